"""Names the PII stage knows, kept apart from the Presidio engine so that importing the
config model does not import Presidio and spaCy (about a second per process)."""

from __future__ import annotations

SUPPORTED_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IP_ADDRESS",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "URL_CREDENTIAL",
)

# Query parameter names whose values are credentials/session ids, not content.
SECRET_PARAM_NAMES: tuple[str, ...] = (
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "session",
    "sessionid",
    "session_id",
    "sid",
    "phpsessid",
    "jsessionid",
    "auth",
    "authorization",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
)
