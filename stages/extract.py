"""HTML -> main text (trafilatura or resiliparse), with per-document timeout and drop reasons.

Why a stage of its own: extraction is ~95% of the runtime of a FineWeb-style pipeline
(datatrove #182), so it runs in its own actor pool, bounds each document's time and size, and
says why every document it rejects was rejected (``extract.*`` reasons, docs/architecture.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import weakref
from collections.abc import Callable
from html import unescape
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from core.config_effects import Execution, Output
from stages.html_guards import max_attributes, nesting_depth
from stages.text_decode import binary_ratio, decode_html

__all__ = [
    "ExtractConfig",
    "Extractor",
    "ExtractionTimeout",
    "apply_drops",
]


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
    trafilatura_fast: Output[bool] = Field(
        False,
        description=(
            "trafilatura fast: skip the fallback extractors (readability, jusText) it runs when "
            "its own result looks short. The `balanced` profile's setting: about 2x the "
            "extraction speed at about 0.01 lower snippet F1 (benchmarks/extraction_quality.py)."
        ),
    )
    include_comments: Output[bool] = Field(
        False, description="trafilatura include_comments: keep user comments (FineWeb: False)."
    )
    deduplicate: Output[bool] = Field(
        False,
        description=(
            "trafilatura deduplicate: drop a text segment (paragraph) repeated more than twice "
            "WITHIN the page, with a cache fresh for every document (trafilatura's own cache is "
            "process-wide, so a page's text depended on the pages extracted before it). Off by "
            "default (FineWeb: on): snippet F1 on trafilatura-eval (989 pages, "
            "benchmarks/extraction_quality.py) is 0.9214 off, 0.9202 reset per document, "
            "0.9208 with the old per-batch cache (one 989-page batch); off keeps 6 true "
            "snippets that per-document dedup loses and costs no cache."
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
            "Per-document wall-clock limit, seconds; 0 disables (and extracts in-process). "
            "Enforced by a watchdog that works on any thread and inside Ray workers: the "
            "library runs in a child process, which is killed when one page overruns; that "
            "page is extract.timeout and the rest of its batch is extracted by a fresh child. "
            "datatrove uses 0.1 s; 10 s only stops pathological pages on a loaded 2-core node."
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
    max_attributes: Output[int] = Field(
        5000,
        gt=0,
        le=10_000_000,
        description=(
            "Pages with a tag carrying more attributes are extract.too_many_attributes and "
            "never parsed: lxml is superlinear in the attributes of one tag (a tag with 800k "
            "attributes hung it). Real pages stay under a few hundred per tag."
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


class ExtractionTimeout(RuntimeError):
    """The extraction child process could not be started or answered nothing in time."""


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


_CHILD_START_S = 300.0  # importing trafilatura/lxml on a loaded node; only once per child


def _kill(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a zombie we cannot reap
            pass


class _Watchdog:
    """Runs the extraction library in a child process and kills it when a page overruns.

    Why a process: a signal (SIGALRM) only interrupts Python code on the main thread, Ray runs
    actor methods on other threads, and lxml/resiliparse can spend minutes inside C that no
    signal reaches. A killed child is the only bound that always holds. One child per
    Extractor, started on first use; the pages of a batch stream through it one by one.
    """

    def __init__(self, cfg: ExtractConfig) -> None:
        self.cfg = cfg
        self.proc: subprocess.Popen | None = None
        self._ready = False
        self._tx: Connection | None = None
        self._rx: Connection | None = None
        self._final = weakref.finalize(self, _kill, None)
        self.restarts = 0

    def spawn(self) -> None:
        """Start the child now without waiting for it: its imports (~1 s) then overlap the
        caller's other model loads. The first batch waits for it to be ready."""
        if self.proc is None:
            self._spawn()

    def _start(self) -> None:
        self._spawn()
        self._await_ready()

    def _spawn(self) -> None:
        c2p_r, c2p_w = os.pipe()
        p2c_r, p2c_w = os.pipe()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        code = (
            "import sys; from stages.extract import _child_main; "
            "_child_main(int(sys.argv[1]), int(sys.argv[2]))"
        )
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, str(p2c_r), str(c2p_w)],
                pass_fds=(p2c_r, c2p_w),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(p2c_r)
            os.close(c2p_w)
        self._final.detach()
        self._final = weakref.finalize(self, _kill, self.proc)
        self._tx = Connection(p2c_w, readable=False)
        self._rx = Connection(c2p_r, writable=False)
        self._tx.send(self.cfg.model_dump(mode="json"))
        self._ready = False

    def _await_ready(self) -> None:
        assert self._rx is not None
        if not self._rx.poll(_CHILD_START_S):
            self.stop()
            raise ExtractionTimeout(f"extraction child did not start in {_CHILD_START_S:.0f} s")
        try:
            ready = self._rx.recv()
        except EOFError:
            ready = None
        if ready != "ready":
            self.stop()
            raise ExtractionTimeout(f"extraction child failed to start: {ready!r}"[:300])
        self._ready = True

    def stop(self) -> None:
        for conn in (self._tx, self._rx):
            if conn is not None:
                conn.close()
        self._tx = self._rx = None
        _kill(self.proc)
        self.proc = None
        self._ready = False

    def run(self, items: list[tuple[int, bytes, str | None]]) -> dict[int, tuple[Any, ...]]:
        """(index, html bytes, charset) -> {index: (text, title, reason, detail, codec)}; every
        index answered (codec None when the page was not decoded)."""
        out: dict[int, tuple[Any, ...]] = {}
        todo = items
        limit = self.cfg.timeout_s
        while todo:
            if self.proc is None or self.proc.poll() is not None:
                self.stop()
                self._start()
            elif not self._ready:  # spawned ahead by spawn()
                self._await_ready()
            assert self._tx is not None and self._rx is not None
            self._tx.send(todo)
            n_done = 0
            failed: tuple[Any, ...] | None = None
            for _ in todo:
                if not self._rx.poll(limit):
                    failed = (None, None, "extract.timeout", f"timeout_s={limit} exceeded", None)
                    break
                try:
                    msg = self._rx.recv()
                except (EOFError, OSError):
                    code = self.proc.poll() if self.proc is not None else None
                    failed = (
                        None,
                        None,
                        "extract.error",
                        f"extractor process died (exit status {code})",
                        None,
                    )
                    break
                out[msg[0]] = msg[1:]
                n_done += 1
            if failed is None:
                return out
            # the page at todo[n_done] overran or killed the child: count it, restart, go on
            out[todo[n_done][0]] = failed
            self.stop()
            self.restarts += 1
            todo = todo[n_done + 1 :]
        return out


def _child_main(rfd: int, wfd: int) -> None:
    """Entry point of the extraction child: config, then batches of pages until EOF."""
    rx = Connection(rfd, writable=False)
    tx = Connection(wfd, readable=False)
    try:
        ex = Extractor(ExtractConfig(**rx.recv()), _in_process=True)
    except BaseException as e:  # noqa: BLE001 - report why, then exit
        tx.send(f"{type(e).__name__}: {e}")
        return
    tx.send("ready")
    while True:
        try:
            batch = rx.recv()
        except (EOFError, OSError):
            return
        for idx, html, charset in batch:
            tx.send((idx, *ex._extract_page(html, charset)))


class Extractor:
    """Stateful stage: ``Extractor(cfg)(table)`` adds ``text`` (and ``title``) and drop columns.

    It also rewrites ``charset`` of every page it decoded to the codec that decoded it (a
    cp1251 page labelled utf-8 says cp1251), so the column explains the text it stands next to.

    With ``timeout_s > 0`` the library runs in a watchdog child process (see `_Watchdog`).
    Empty and oversized payloads are dropped here and never sent; the child decodes each page
    and runs the structural guards (depth, attributes, binary; ``stages.html_guards``) before
    any parser sees it.
    """

    def __init__(self, cfg: ExtractConfig | None = None, _in_process: bool = False) -> None:
        self.cfg = cfg or ExtractConfig()
        self._fn: Callable[[str], tuple[str | None, str | None]]
        self._watchdog = None if _in_process or self.cfg.timeout_s <= 0 else _Watchdog(self.cfg)
        if self._watchdog is not None:
            return  # the libraries load in the child
        if self.cfg.extractor == "trafilatura":
            import trafilatura
            from trafilatura.deduplication import LRU_SIZE, LRUCache

            self._traf = trafilatura
            self._new_cache = lambda: LRUCache(maxsize=LRU_SIZE)
            self._fn = self._trafilatura
        else:
            from resiliparse.extract.html2text import extract_plain_text
            from resiliparse.parse.html import HTMLTree

            self._tree = HTMLTree
            self._plain = extract_plain_text
            self._fn = self._resiliparse

    def start(self) -> None:
        """Start the watchdog child ahead of the first batch (no-op without one)."""
        if self._watchdog is not None:
            self._watchdog.spawn()

    def close(self) -> None:
        """Stop the watchdog child (also done when the Extractor is garbage-collected)."""
        if self._watchdog is not None:
            self._watchdog.stop()

    def _trafilatura(self, html: str) -> tuple[str | None, str | None]:
        c = self.cfg
        kw = dict(
            favor_precision=c.favor_precision,
            fast=c.trafilatura_fast,
            include_comments=c.include_comments,
            # a fresh cache per document: no state crosses documents (trafilatura's default
            # cache is a process-wide global that would remember every page seen before)
            deduplicate=self._new_cache() if c.deduplicate else False,
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

    def _size_guard(self, html: bytes | None) -> tuple[Any, ...] | None:
        """The drop row of an empty or oversized payload (checked before it is sent anywhere)."""
        if html is None or len(html) == 0:
            return (None, None, "extract.empty", "html_bytes=0")
        if len(html) > self.cfg.max_html_bytes:
            return (
                None,
                None,
                "extract.too_large",
                f"html_bytes={len(html)} > {self.cfg.max_html_bytes}",
            )
        return None

    def _extract_page(
        self, html: bytes, charset: str | None
    ) -> tuple[str | None, str | None, str | None, str | None, str | None]:
        """Decode, run the structural guards, then the library (in this process). Never raises.

        Runs where the library runs (the watchdog child), so the parent only ships bytes: a
        decoded page would cost a UTF-8 round trip through pickle on each side. The last item
        is the codec that decoded the page (the ``charset`` column records it, not the label).
        """
        try:
            decoded, enc = decode_html(html, charset)
        except Exception as e:  # noqa: BLE001 - decode_html should not raise; stay safe
            return None, None, "extract.error", f"decode: {type(e).__name__}", None
        return (*self._guard_and_extract(html, decoded, enc), enc)

    def _guard_and_extract(
        self, html: bytes, decoded: str, enc: str
    ) -> tuple[str | None, str | None, str | None, str | None]:
        """The structural guards on the decoded page, then the library."""
        c = self.cfg
        raw = html if enc == "utf-8" else None  # UTF-8 bytes: the guards count on them
        depth = nesting_depth(decoded, c.max_nesting_depth, raw)
        if depth > c.max_nesting_depth:
            return (
                None,
                None,
                "extract.too_large",
                f"nesting_depth={depth} > {c.max_nesting_depth}",
            )
        attrs = max_attributes(decoded, c.max_attributes, raw)
        if attrs > c.max_attributes:
            return (
                None,
                None,
                "extract.too_many_attributes",
                f"attributes={attrs} > {c.max_attributes}",
            )
        ratio = binary_ratio(decoded)
        if ratio > c.max_binary_ratio:
            return (
                None,
                None,
                "extract.binary",
                f"binary_ratio={ratio:.2f} > {c.max_binary_ratio}",
            )
        return self._extract_decoded(decoded)

    def _extract_decoded(
        self, decoded: str
    ) -> tuple[str | None, str | None, str | None, str | None]:
        """Run the library on one guarded page (in-process). Never raises."""
        c = self.cfg
        try:
            text, title = self._fn(decoded)
        except RecursionError:
            return None, None, "extract.error", "RecursionError (nesting too deep)"
        except Exception as e:  # noqa: BLE001 - library bug on one page must not kill a batch
            # the exception type only: messages can quote page bytes (no payload in details)
            return None, None, "extract.error", type(e).__name__
        n = len(text.strip()) if text else 0
        if n < c.min_text_chars:
            return None, title, "extract.empty", f"text_chars={n} < {c.min_text_chars}"
        return text, title, None, None

    def extract_one(
        self, html: bytes | None, charset: str | None
    ) -> tuple[str | None, str | None, str | None, str | None]:
        """(text, title, drop_reason, drop_detail) for one page. Never raises."""
        dropped = self._size_guard(html)
        if dropped is not None:
            return dropped  # type: ignore[return-value]
        assert html is not None
        if self._watchdog is not None:
            return self._watchdog.run([(0, html, charset)])[0][:4]  # type: ignore[return-value]
        return self._extract_page(html, charset)[:4]

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        html = table["html"].to_pylist() if "html" in table.column_names else [None] * n
        charset = table["charset"].to_pylist() if "charset" in table.column_names else [None] * n
        pre = (
            table["drop_reason"].to_pylist() if "drop_reason" in table.column_names else [None] * n
        )
        results: dict[int, tuple[Any, ...]] = {}
        todo: list[tuple[int, bytes, str | None]] = []
        for i in range(n):
            if pre[i] is not None:
                continue
            dropped = self._size_guard(html[i])
            if dropped is not None:
                results[i] = (*dropped, None)
            else:
                todo.append((i, html[i], charset[i]))
        if self._watchdog is not None:
            if todo:
                results.update(self._watchdog.run(todo))
        else:
            for i, page, cs in todo:
                results[i] = self._extract_page(page, cs)
        texts: list[str | None] = [None] * n
        titles: list[str | None] = [None] * n
        reasons: list[str | None] = [None] * n
        details: list[str | None] = [None] * n
        for i, res in results.items():
            texts[i], titles[i], reasons[i], details[i], enc = res
            if enc is not None:
                charset[i] = enc  # the codec used; rows never decoded keep the reader's label
        if "charset" in table.column_names:
            table = _set_column(table, "charset", pa.array(charset, pa.string()))
        table = _set_column(table, "text", pa.array(texts, pa.string()))
        if self.cfg.with_title:
            table = _set_column(table, "title", pa.array(titles, pa.string()))
        return apply_drops(table, reasons, details)
