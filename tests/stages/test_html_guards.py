"""The hostile-page guards: their vectorised paths equal plain per-tag loops, and counting on
UTF-8 bytes gives the same answers as counting on the decoded page."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.html_guards import _ATTR_RE, max_attributes, nesting_depth
from stages.warc_reader import ReadConfig, read_warc


@pytest.fixture(scope="module")
def real_pages(shared_data: Path) -> list[bytes]:
    path = shared_data / "extraction" / "trafilatura-eval.warc.gz"
    chunk = next(read_warc(str(path), ReadConfig(chunk_records=200)))
    return [h for h in chunk.docs["html"].to_pylist() if h]


def _depth_reference(html: str) -> int:
    void = "area base br col embed hr img input link meta param source track wbr p li option"
    depth = best = 0
    for close, name in re.findall(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)", html):
        if name.lower() in void.split():
            continue
        depth = depth - 1 if (close and depth > 0) else (0 if close else depth + 1)
        best = max(best, depth)
    return best


def _attrs_reference(html: str, cap: int) -> int:
    best = 0
    for m in re.finditer(r"<[A-Za-z][^<>]*", html):
        if len(m.group(0)) > cap:
            best = max(best, len(_ATTR_RE.findall(m.group(0))))
    return best


def _both_paths(raw: bytes, cap_depth: int, cap_attrs: int) -> tuple[tuple[int, int], ...]:
    """(depth, attributes) counted on the decoded page, and on its UTF-8 bytes."""
    page = raw.decode("utf-8", "replace")
    on_str = (nesting_depth(page, cap_depth), max_attributes(page, cap_attrs))
    on_bytes = (nesting_depth(page, cap_depth, raw), max_attributes(page, cap_attrs, raw))
    return on_str, on_bytes


_PIECES = st.sampled_from(
    [
        "<div>",
        "</div>",
        "<P>",
        "</p>",
        "<li>",
        "<br/>",
        "<pre>",
        "</PRE>",
        "<span a=1 b='x y'>",
        "</span>",
        "<a href=x c d>",
        "text ",
        " = ",
        "<",
        ">",
        "</",
        "<table2>",
        "</table2>",
        "<img src=x>",
        "<Option>",
        "<\u017fpan>",  # long s: a letter that case-folds to "s", not an ASCII tag name
        "<LI>",
        "<options>",
        "</options>",
        "<x " + "k=v " * 12 + ">",
        "<b \u00e9=\u00fc\u00a0c=d\u3000e>",  # multi-byte letters, NBSP and ideographic space
        "\u00e4\u00f6\u00fc\u4e2d\u6587 ",
    ]
)
# bytes that are not valid UTF-8 on their own: the decoder replaces them
_BAD_BYTES = st.sampled_from([b"\xff", b"\xc3", b"\xe4\xb8", b"\x80\x80", b"\xf0\x9f\x98"])


def test_depth_and_attributes_on_small_pages() -> None:
    assert nesting_depth("<div>" * 50 + "</div>" * 50, 10) == 50
    assert nesting_depth("<p>a<p>b<br><li>c" * 100, 10) == 0
    assert max_attributes("<div " + " ".join(f"a{i}=1" for i in range(40)) + ">", 30) == 40
    raw = ("<div>" * 50 + "</div>" * 50).encode()
    assert nesting_depth(raw.decode(), 10, raw) == 50


@given(st.lists(_PIECES, max_size=300), st.integers(0, 40))
@settings(max_examples=300, deadline=None)
def test_guard_estimates_match_the_per_tag_loops(pieces: list[str], cap: int) -> None:
    html = "".join(pieces)
    assert nesting_depth(html, 0) == _depth_reference(html)
    assert max_attributes(html, cap) == _attrs_reference(html, cap) or (
        html.count("=") + html.count(" ") <= cap and max_attributes(html, cap) == 0
    )


@given(
    st.lists(st.one_of(_PIECES.map(str.encode), _BAD_BYTES), max_size=300),
    st.integers(0, 40),
    st.integers(0, 40),
)
@settings(max_examples=400, deadline=None)
def test_counting_on_utf8_bytes_equals_counting_on_the_decoded_page(
    pieces: list[bytes], cap_depth: int, cap_attrs: int
) -> None:
    on_str, on_bytes = _both_paths(b"".join(pieces), cap_depth, cap_attrs)
    assert on_bytes == on_str


def test_guard_estimates_match_on_real_pages(real_pages: list[bytes]) -> None:
    depths, counts = [], []
    for raw in real_pages:
        page = raw.decode("utf-8", "replace")
        assert nesting_depth(page, 0) == _depth_reference(page)
        assert max_attributes(page, 0) == _attrs_reference(page, 0)
        assert max_attributes(page, 30) == _attrs_reference(page, 30) or (
            page.count("=") + page.count(" ") <= 30
        )
        for caps in ((0, 0), (30, 30), (2000, 5000)):
            on_str, on_bytes = _both_paths(raw, *caps)
            assert on_bytes == on_str
        depths.append(nesting_depth(page, 0))
        counts.append(max_attributes(page, 0))
    # real pages stay below the default caps (2,000 / 5,000) even when the full scan runs
    assert max(depths) < 2000 and min(depths) > 3
    assert max(counts) < 5000 and min(counts) >= 1


def test_the_extractor_counts_utf8_pages_on_bytes_and_others_on_text() -> None:
    """The same deep page in UTF-8 and in UTF-16 is refused with the same detail."""
    from stages.extract import ExtractConfig, Extractor

    page = "<html><body>" + "<div>" * 3000 + "tief \u00fcber " + "</div>" * 3000 + "</body></html>"
    table = pa.table(
        {
            "html": [page.encode("utf-8"), page.encode("utf-16")],
            "charset": ["utf-8", None],
        }
    )
    out = Extractor(ExtractConfig(extractor="resiliparse", timeout_s=0))(table)
    assert out["drop_reason"].to_pylist() == ["extract.too_large"] * 2
    assert out["drop_detail"].to_pylist() == ["nesting_depth=3002 > 2000"] * 2
