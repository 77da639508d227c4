"""HTML -> main text (trafilatura or resiliparse), with per-document timeout and drop reasons.

Why a stage of its own: extraction is ~95% of the runtime of a FineWeb-style pipeline
(datatrove #182), so it runs in its own actor pool, bounds each document's time and size, and
says why every document it rejects was rejected (``extract.*`` reasons, docs/architecture.md).
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from html import unescape
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from core.config_effects import Execution, Output
from stages.text_decode import binary_ratio, decode_html

__all__ = ["ExtractConfig", "Extractor", "ExtractionTimeout", "apply_drops", "nesting_depth"]


class ExtractConfig(BaseModel):
    """Which extractor runs and the limits that turn a page into an ``extract.*`` drop."""

    model_config = ConfigDict(extra="forbid")

    extractor: Output[Literal["trafilatura", "resiliparse"]] = Field(
        "trafilatura",
        description=(
            "HTML-to-text library. trafilatura is FineWeb's choice (better snippet precision "
            "on trafilatura-eval, see benchmarks/extraction_quality.py); resiliparse is "
            "DCLM's and runs many times faster."
        ),
    )
    favor_precision: Output[bool] = Field(
        True,
        description="trafilatura favor_precision: less boilerplate, some text lost (FineWeb: True).",
    )
    include_comments: Output[bool] = Field(
        False, description="trafilatura include_comments: keep user comments (FineWeb: False)."
    )
    deduplicate: Output[bool] = Field(
        True,
        description=(
            "trafilatura deduplicate: drop text segments (paragraphs) already seen in the same "
            "batch (FineWeb: True). The LRU cache is reset per batch, so output does not depend "
            "on which batches a worker processed before (trafilatura's own cache is global)."
        ),
    )
    include_tables: Output[bool] = Field(
        True,
        description="trafilatura include_tables: keep table text (trafilatura and FineWeb default).",
    )
    resiliparse_main_content: Output[bool] = Field(
        True,
        description="resiliparse main_content heuristics (DCLM uses main_content=True).",
    )
    with_title: Output[bool] = Field(
        False, description="Also add a `title` column (the HTML <title>, whitespace collapsed)."
    )
    timeout_s: Execution[float] = Field(
        10.0,
        ge=0,
        le=3600,
        description=(
            "Per-document wall-clock limit, seconds; 0 disables. Enforced with SIGALRM when "
            "the stage runs on the main thread (Ray actors do), unlimited otherwise. datatrove "
            "uses 0.1 s; 10 s only stops pathological pages on a loaded 2-core node."
        ),
    )
    max_html_bytes: Output[int] = Field(
        5 * 1024 * 1024,
        gt=0,
        le=1 << 30,
        description=(
            "Pages with more HTML bytes are extract.too_large and never parsed (5 MiB: above "
            "CommonCrawl's 1 MiB payload truncation, bounds lxml memory and time)."
        ),
    )
    min_text_chars: Output[int] = Field(
        1,
        ge=1,
        description=(
            "Extracted text (stripped) shorter than this is extract.empty. 1 = drop only "
            "empty results, as FineWeb; word-count limits belong to the quality stage."
        ),
    )
    max_nesting_depth: Output[int] = Field(
        2000,
        gt=0,
        description=(
            "Pages whose tag nesting (estimated: opening minus closing tags, void elements "
            "skipped) gets deeper are extract.too_large. resiliparse main_content is quadratic "
            "in depth and cannot be interrupted by the timeout: measured here 0.19 s at depth "
            "2,000, 0.9 s at 4,000, 334 s at 30,000."
        ),
    )
    max_binary_ratio: Output[float] = Field(
        0.1,
        gt=0,
        le=1,
        description=(
            "Share of NUL/control/U+FFFD chars in the first 2,000 decoded chars above which "
            "the payload is extract.binary (random bytes score ~0.5, real pages < 0.01)."
        ),
    )


class ExtractionTimeout(BaseException):  # noqa: N818
    """Raised inside an extractor call when the per-document time is up.

    A BaseException on purpose: trafilatura wraps lxml parsing in ``except Exception`` and
    would swallow an ordinary exception, going on with its fallback extractors.
    """


def _on_alarm(signum: int, frame: object) -> None:
    raise ExtractionTimeout()


@contextmanager
def _time_limit(seconds: float):
    """SIGALRM-based limit; a no-op off the main thread or when ``seconds`` is 0."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def apply_drops(table: pa.Table, reasons: list[str | None], details: list[str | None]) -> pa.Table:
    """Set drop_reason/drop_detail, keeping any reason an earlier stage already set."""
    new_r = pa.array(reasons, pa.string())
    new_d = pa.array(details, pa.string())
    if "drop_reason" in table.column_names:
        old_r = table["drop_reason"].combine_chunks().cast(pa.string())
        old_d = (
            table["drop_detail"].combine_chunks().cast(pa.string())
            if "drop_detail" in table.column_names
            else pa.nulls(len(table), pa.string())
        )
        keep_old = pc.is_valid(old_r)
        new_r = pc.if_else(keep_old, old_r, new_r)
        new_d = pc.if_else(keep_old, old_d, new_d)
    for name, arr in (("drop_reason", new_r), ("drop_detail", new_d)):
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, arr)
        else:
            table = table.append_column(name, arr)
    return table


_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)")
_VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr p li option".split()
)


def nesting_depth(html: str, cap: int) -> int:
    """Estimated maximum tag depth; cheap (str.count) unless the page could be that deep.

    ``p``, ``li`` and ``option`` count as void: their end tags are optional in HTML and
    unclosed ones would otherwise look like nesting.
    """
    if html.count("<") - html.count("</") <= cap:
        return 0  # fewer opening tags than the cap: cannot be deeper
    depth = best = 0
    for close, name in _TAG_RE.findall(html):
        if name.lower() in _VOID:
            continue
        if close:
            depth = depth - 1 if depth > 0 else 0
        else:
            depth += 1
            if depth > best:
                best = depth
    return best


_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)


def _html_title(html: str) -> str | None:
    """<title> text from the first 64 KB (trafilatura's metadata pass costs more than extraction)."""
    m = _TITLE_RE.search(html, 0, 65536)
    if not m:
        return None
    title = " ".join(unescape(m.group(1)).split())
    return title or None


def _set_column(table: pa.Table, name: str, arr: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, arr)
    return table.append_column(name, arr)


class Extractor:
    """Stateful stage: ``Extractor(cfg)(table)`` adds ``text`` (and ``title``) and drop columns."""

    def __init__(self, cfg: ExtractConfig | None = None) -> None:
        self.cfg = cfg or ExtractConfig()
        self._fn: Callable[[str], tuple[str | None, str | None]]
        if self.cfg.extractor == "trafilatura":
            import trafilatura
            from trafilatura.deduplication import LRU_SIZE, LRUCache

            self._traf = trafilatura
            self._new_cache = lambda: LRUCache(maxsize=LRU_SIZE)
            self._dedup = self._new_cache()
            self._fn = self._trafilatura
        else:
            from resiliparse.extract.html2text import extract_plain_text
            from resiliparse.parse.html import HTMLTree

            self._tree = HTMLTree
            self._plain = extract_plain_text
            self._fn = self._resiliparse

    def _trafilatura(self, html: str) -> tuple[str | None, str | None]:
        c = self.cfg
        kw = dict(
            favor_precision=c.favor_precision,
            include_comments=c.include_comments,
            deduplicate=self._dedup if c.deduplicate else False,
            include_tables=c.include_tables,
        )
        text = self._traf.extract(html, output_format="txt", **kw)
        return text, (_html_title(html) if c.with_title else None)

    def _resiliparse(self, html: str) -> tuple[str | None, str | None]:
        tree = self._tree.parse(html)
        text = self._plain(
            tree,
            main_content=self.cfg.resiliparse_main_content,
            alt_texts=False,
            links=False,
            form_fields=False,
            noscript=False,
            comments=self.cfg.include_comments,
        )
        title = tree.title if self.cfg.with_title else None
        return text, title

    def extract_one(
        self, html: bytes | None, charset: str | None
    ) -> tuple[str | None, str | None, str | None, str | None]:
        """(text, title, drop_reason, drop_detail) for one page. Never raises."""
        c = self.cfg
        if html is None or len(html) == 0:
            return None, None, "extract.empty", "html_bytes=0"
        if len(html) > c.max_html_bytes:
            return None, None, "extract.too_large", f"html_bytes={len(html)} > {c.max_html_bytes}"
        try:
            decoded, _enc = decode_html(html, charset)
        except Exception as e:  # noqa: BLE001 - decode_html should not raise; stay safe
            return None, None, "extract.error", f"decode: {e!r}"[:200]
        depth = nesting_depth(decoded, c.max_nesting_depth)
        if depth > c.max_nesting_depth:
            return (
                None,
                None,
                "extract.too_large",
                f"nesting_depth={depth} > {c.max_nesting_depth}",
            )
        ratio = binary_ratio(decoded)
        if ratio > c.max_binary_ratio:
            return None, None, "extract.binary", f"binary_ratio={ratio:.2f} > {c.max_binary_ratio}"
        try:
            with _time_limit(c.timeout_s):
                text, title = self._fn(decoded)
        except ExtractionTimeout:
            return None, None, "extract.timeout", f"timeout_s={c.timeout_s} exceeded"
        except RecursionError:
            return None, None, "extract.error", "RecursionError (nesting too deep)"
        except Exception as e:  # noqa: BLE001 - library bug on one page must not kill a batch
            return None, None, "extract.error", f"{type(e).__name__}: {e}"[:200]
        n = len(text.strip()) if text else 0
        if n < c.min_text_chars:
            return None, title, "extract.empty", f"text_chars={n} < {c.min_text_chars}"
        return text, title, None, None

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        html = table["html"].to_pylist() if "html" in table.column_names else [None] * n
        charset = table["charset"].to_pylist() if "charset" in table.column_names else [None] * n
        pre = (
            table["drop_reason"].to_pylist() if "drop_reason" in table.column_names else [None] * n
        )
        if self.cfg.extractor == "trafilatura":
            # a fresh dedup cache per batch: output depends on the batch (a deterministic chunk
            # of one file), not on which batches a worker happened to process before
            self._dedup = self._new_cache()
        texts: list[str | None] = [None] * n
        titles: list[str | None] = [None] * n
        reasons: list[str | None] = [None] * n
        details: list[str | None] = [None] * n
        for i in range(n):
            if pre[i] is not None:
                continue
            texts[i], titles[i], reasons[i], details[i] = self.extract_one(html[i], charset[i])
        table = _set_column(table, "text", pa.array(texts, pa.string()))
        if self.cfg.with_title:
            table = _set_column(table, "title", pa.array(titles, pa.string()))
        return apply_drops(table, reasons, details)
