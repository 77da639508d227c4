"""core/urls.py: the one URL normaliser shared by ingest, blocklists, the URL filter and delete."""

from __future__ import annotations

import time

import pytest

from core.urls import (
    domain_forms,
    host_matches,
    host_of,
    is_public_suffix,
    normalize_domain,
    normalize_url,
    url_hash,
)

SAME_PAGE = [
    "http://example.com/a/b",
    "HTTP://EXAMPLE.COM/a/b",
    "http://example.com./a/b",
    "http://example.com:80/a/b",
    "http://example%2ecom/a/b",
    "http://example%2Ecom./%61/b",
    "http://user:secret@example.com/a/b",
    "http://example.com/a/./x/../b",
    "http://example.com/a/b#section",
    "<http://example.com/a/b>",
    "  http://example.com/a/b  ",
    "example.com/a/b",
]


@pytest.mark.parametrize("spelling", SAME_PAGE)
def test_spellings_of_one_page_share_normal_form_and_hash(spelling):
    assert normalize_url(spelling) == "http://example.com/a/b"
    assert url_hash(spelling) == url_hash(SAME_PAGE[0])


@pytest.mark.parametrize(
    "url,expected",
    [
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("http://example.com/%7euser?q=%7E&a=%2f", "http://example.com/~user?q=~&a=%2F"),
        ("http://bücher.example/ä b", "http://xn--bcher-kva.example/%C3%A4%20b"),
        ("http://xn--bcher-kva.example/%C3%A4%20b", "http://xn--bcher-kva.example/%C3%A4%20b"),
        ("http://example.com/100%", "http://example.com/100%25"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
    ],
)
def test_normal_form(url, expected):
    assert normalize_url(url) == expected


def test_different_pages_differ():
    assert url_hash("http://example.com/a") != url_hash("https://example.com/a")
    assert url_hash("http://example.com/a") != url_hash("http://example.com/A")
    assert url_hash("http://example.com/a?x=1") != url_hash("http://example.com/a?x=2")
    assert len(url_hash("http://example.com/")) == 32


def test_hosts_and_domains():
    assert host_of("HTTP://Sub.Example.COM.:8080/x") == "sub.example.com"
    assert host_of("http://sub%2eexample%2ecom/") == "sub.example.com"
    assert host_of("not a url at all") == "not a url at all"
    assert host_of("") == ""
    assert normalize_domain("*.Example.COM.") == "example.com"
    assert normalize_domain("https://www.example.com/path") == "www.example.com"
    assert domain_forms("bücher.example") == ("xn--bcher-kva.example", "bücher.example")
    assert host_matches("a.b.example.com", {"example.com"}) == "example.com"
    assert host_matches("notexample.com", {"example.com"}) is None


def test_public_suffixes_from_the_bundled_list():
    for d in ("com", "co.uk", "github.io", "COM.", "*.co.uk"):
        assert is_public_suffix(d), d
    for d in ("example.com", "example.co.uk", "someone.github.io"):
        assert not is_public_suffix(d), d


def test_hostile_urls_are_linear_and_never_raise():
    for u in [
        "http://x.com/" + "a" * 1_000_000,
        "http://x.com/" + "%41" * 300_000,
        "http://x.com/" + "/.." * 300_000,
        "http://" + "a." * 300_000 + "com/",
        "http://[::1",
        "http://%zz%/",
        "\x00\udcff://",
        "http://" + "\udcff" * 10,
    ]:
        t = time.perf_counter()
        assert isinstance(url_hash(u), str)
        assert isinstance(host_of(u), str)
        assert time.perf_counter() - t < 2.0


def test_url_filter_blocks_every_spelling_of_a_blocked_host():
    """stages/url_filter.py goes through the same normaliser as ingest and deletion."""
    import pyarrow as pa

    from stages.url_filter import UrlFilter, UrlFilterConfig

    f = UrlFilter(
        UrlFilterConfig(
            blocklist_path=None,
            banned_substrings=[],
            extra_blocked_domains=["Blocked.Example.", "bücher.example", "prefix.example/private/"],
        )
    )
    urls = [
        "http://blocked.example/a",
        "HTTP://BLOCKED%2eEXAMPLE.:80/a",
        "https://sub.blocked.example./x",
        "http://xn--bcher-kva.example/",
        "http://BÜCHER.example/x",
        "https://www.prefix.example/%70rivate/doc",
        "http://notblocked.example/",
        "https://prefix.example/public/",
        None,
    ]
    reason, _ = f.evaluate(pa.array(urls, pa.string()))
    assert list(reason) == ["url.blocklist"] * 6 + [None, None, None]
