"""The ONE URL normaliser and matcher: ingest, blocklists, the URL filter and deletion use it.

Why one: a deletion request, a blocklist entry and a crawled record name the same page in many
spellings (`HTTP://Example.COM:80/a`, `http://example.com./a`, `http://example%2ecom/%61`,
`http://bücher.example/` vs its punycode). If each component normalised differently, a
deleted page could come back under another spelling. Everything here is linear in the URL's
length (hostile input) and never raises on garbage: a string that is not a URL normalises to
itself, trimmed.

Normal form (RFC 3986 section 6 plus what crawlers agree on):
- scheme and host lower-case; host percent-decoded, trailing dots removed, IDNA (UTS #46)
  to punycode; userinfo dropped (credentials do not change the page, and they are PII);
- default ports dropped (http 80, https 443, ws 80, wss 443, ftp 21);
- path and query: percent-encoded unreserved characters decoded (`%7E` -> `~`), other escapes
  upper-cased, non-ASCII and spaces percent-encoded as UTF-8, `.`/`..` segments removed,
  an empty path becomes `/`;
- fragment dropped (never sent to a server: `page#a` and `page#b` are one record);
- no scheme (`example.com/a`): read as `http://`.

`url_hash` is the first 128 bits of BLAKE2b over the normal form, as 32 hex characters: the
`url_hash` column the reader computes from the ORIGINAL url before any PII scrubbing, so a
deletion matches whether the user gives the original URL or any other spelling of it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import pyarrow as pa

__all__ = [
    "normalize_url",
    "url_hash",
    "host_of",
    "normalize_domain",
    "domain_forms",
    "parent_domains",
    "host_matches",
    "url_hash_array",
    "host_array",
    "is_public_suffix",
]

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443", "ftp": "21"}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_PCT = re.compile(r"%([0-9a-fA-F]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters left as they are in a path or query (RFC 3986 pchar + '/' + '?'); the rest is
# percent-encoded (as UTF-8).
_NOT_KEPT = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]")
_BARE_PCT = re.compile(r"%(?![0-9a-fA-F]{2})")
_HASH_BYTES = 16


def _pct_unreserved(m: re.Match[str]) -> str:
    b = int(m.group(1), 16)
    return chr(b) if b in _UNRESERVED else "%" + m.group(1).upper()


def _encode_char(m: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in m.group(0).encode("utf-8", "surrogatepass"))


def _encode_part(s: str) -> str:
    """Percent-encode what must be, normalise existing escapes; linear regex passes."""
    s = _NOT_KEPT.sub(_encode_char, s)
    if "%" not in s:
        return s
    # A '%' not followed by two hex digits is a literal percent sign.
    s = _BARE_PCT.sub("%25", s)
    return _PCT.sub(_pct_unreserved, s)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, on whole segments (linear)."""
    if "." not in path:
        return path
    segs = path.split("/")
    out: list[str] = []
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    res = "/".join(out)
    if path.startswith("/") and not res.startswith("/"):
        res = "/" + res
    return res


def _pct_decode_all(s: str) -> str:
    if "%" not in s:
        return s
    raw = _PCT.sub(lambda m: chr(int(m.group(1), 16)), s)
    try:  # escapes of UTF-8 bytes: decode them as UTF-8
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def _normalize_host(host: str) -> str:
    """Lower-case, percent-decoded, no trailing dots, IDNA punycode (ASCII)."""
    h = _pct_decode_all(host).strip().lower().rstrip(".")
    if not h or h.startswith("["):  # IPv6 literal
        return h
    if h.isascii() or len(h) > 4 * MAX_HOST_CHARS:  # not a DNS name: no IDNA work on it
        return h
    # Full-width dots and other IDNA separators map to '.' under UTS #46.
    try:
        import idna

        return idna.encode(h, uts46=True, transitional=False).decode("ascii").rstrip(".")
    except (idna.IDNAError, UnicodeError, ValueError):
        try:
            return h.encode("idna").decode("ascii").rstrip(".")
        except UnicodeError:
            return h


def _split(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, authority, path, query) without the fragment; None when not absolute."""
    s = url.strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    s = s.split("#", 1)[0]
    m = _SCHEME.match(s)
    if m and s[m.end() : m.end() + 2] == "//":
        scheme, rest = m.group(1).lower(), s[m.end() + 2 :]
    elif m and not s[m.end() :].split("/", 1)[0].isdigit():
        return None  # mailto:, urn:, javascript: ... (`host:8080/x` is a host and port)
    else:
        scheme, rest = "http", s[2:] if s.startswith("//") else s
    cut = len(rest)
    for sep in "/?":
        i = rest.find(sep)
        if i != -1 and i < cut:
            cut = i
    authority, tail = rest[:cut], rest[cut:]
    path, _, query = tail.partition("?")
    if "?" in tail:
        query = "?" + query
    return scheme, authority, path, query


def _host_port(authority: str) -> tuple[str, str]:
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        end = hostport.find("]")
        if end != -1:
            return hostport[: end + 1].lower(), hostport[end + 2 :] if hostport[
                end + 1 : end + 2
            ] == ":" else ""
    host, _, port = hostport.partition(":")
    return host, port


def normalize_url(url: str) -> str:
    """The normal form described in the module docstring (never raises)."""
    if url is None:
        return ""
    parts = _split(url)
    if parts is None:
        return url.strip()
    scheme, authority, path, query = parts
    host, port = _host_port(authority)
    host = _normalize_host(host)
    port = port.lstrip("0") or ("0" if port else "")
    if port and _DEFAULT_PORTS.get(scheme) == port:
        port = ""
    path = _remove_dot_segments(_encode_part(path)) or "/"
    query = _encode_part(query) if query else ""
    return f"{scheme}://{host}{':' + port if port else ''}{path}{query}"


def url_hash(url: str) -> str:
    """Hex of the first 128 bits of BLAKE2b over `normalize_url(url)`."""
    return hashlib.blake2b(
        normalize_url(url).encode("utf-8", "surrogatepass"), digest_size=_HASH_BYTES
    ).hexdigest()


def host_of(url: str) -> str:
    """The normalised host of a URL ('' when there is none)."""
    if not url:
        return ""
    parts = _split(url)
    if parts is None:
        return ""
    return _normalize_host(_host_port(parts[1])[0])


def normalize_domain(domain: str) -> str:
    """A domain as users write it (`*.Example.COM.`, `https://example.com/x`) -> `example.com`."""
    d = (domain or "").strip()
    if "://" not in d:
        d = d.lstrip("*").lstrip(".")
    return host_of(d) if d else ""


def domain_forms(domain: str) -> tuple[str, ...]:
    """The normalised (punycode) domain and, if different, its Unicode spelling."""
    d = normalize_domain(domain)
    forms = [d]
    if "xn--" in d:
        try:
            import idna

            u = idna.decode(d)
            if u != d:
                forms.append(u)
        except (idna.IDNAError, UnicodeError, ValueError):
            pass
    return tuple(forms)


MAX_HOST_CHARS = 253  # DNS: no name (so no blocked domain) is longer


def parent_domains(host: str) -> list[str]:
    """`a.b.example.com` -> [a.b.example.com, b.example.com, example.com, com].

    Only suffixes a real domain name can have (at most 253 characters): a hostile host of
    500k labels would otherwise give 500k suffixes of ~0.5 MB each (quadratic memory).
    """
    if len(host) > MAX_HOST_CHARS:
        cut = host[-MAX_HOST_CHARS - 1 :]
        host = cut[cut.find(".") + 1 :] if "." in cut else ""
    out = []
    while host:
        out.append(host)
        host = host.partition(".")[2]
    return out


def host_matches(host: str, domains: frozenset[str] | set[str]) -> str | None:
    """The blocked domain `host` equals or is a subdomain of, else None."""
    for d in parent_domains(host):
        if d in domains:
            return d
    return None


def url_hash_array(urls: pa.Array | pa.ChunkedArray | Iterable[str | None]) -> pa.Array:
    """`url_hash` over a column (null stays null)."""
    vals = urls.to_pylist() if hasattr(urls, "to_pylist") else list(urls)
    return pa.array([None if u is None else url_hash(u) for u in vals], pa.string())


def host_array(urls: pa.Array | pa.ChunkedArray | Iterable[str | None]) -> pa.Array:
    """`host_of` over a column (null stays null)."""
    vals = urls.to_pylist() if hasattr(urls, "to_pylist") else list(urls)
    return pa.array([None if u is None else host_of(u) for u in vals], pa.string())


_EXTRACTOR = None


def is_public_suffix(domain: str) -> bool:
    """True for `com`, `co.uk`, `github.io`...: a domain anyone can register names under.

    Uses tldextract's bundled Public Suffix List snapshot (private suffixes included), never
    the network: a deletion must not depend on a download.
    """
    global _EXTRACTOR
    d = normalize_domain(domain)
    if not d:
        return True
    if _EXTRACTOR is None:
        import tldextract

        _EXTRACTOR = tldextract.TLDExtract(
            suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
        )
    ext = _EXTRACTOR(d)
    return not ext.domain and bool(ext.suffix)
