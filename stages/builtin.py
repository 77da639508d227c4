"""The built-in per-document stages as :class:`stages.contract.TableStage` s.

Each wraps the stage's implementation module (which stays a plain ``cfg -> table -> table``
object, usable on its own) and loads models in ``setup()``. Their settings live in a section of
the pipeline config (``extract:``, ``langid:``, ``quality:``, ``dedup:``), named by ``section``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from stages.contract import TableStage
from stages.extract import ExtractConfig
from stages.langid import LangIdConfig
from stages.minhash import DedupConfig
from stages.pii import PiiConfig
from stages.quality import SIGNAL_COLUMNS, QualityConfig
from stages.tokenize import TokenizeConfig

if TYPE_CHECKING:
    from stages.tokenize import Tokenize


class ExtractStage(TableStage):
    """HTML -> text with the library named by ``extract.extractor``."""

    name = "extract"
    reads = ("html", "charset")
    adds = ("text",)
    consumes = ("html",)
    Params = ExtractConfig
    section = "extract"
    library: str | None = None  # None: extract.extractor decides

    def setup(self) -> None:
        from stages.extract import Extractor

        params = self.params
        if self.library is not None and params.extractor != self.library:
            params = params.model_copy(update={"extractor": self.library})
        self._impl: Any = Extractor(params)
        self._impl.start()  # the extraction child boots while the other stages load

    def apply(self, table: pa.Table) -> pa.Table:
        return self._impl(table)


class TrafilaturaStage(ExtractStage):
    """HTML -> text with trafilatura (FineWeb's choice), settings from ``extract:``."""

    name = "trafilatura"
    library = "trafilatura"


class ResiliparseStage(ExtractStage):
    """HTML -> text with resiliparse (DCLM's choice, much faster), settings from ``extract:``."""

    name = "resiliparse"
    library = "resiliparse"


class LangIdStage(TableStage):
    """lid.176 then lingua (stages/langid.py): ``lang``, ``lang_score``, ``lang_detector``;
    drops low scores / unwanted languages."""

    name = "lang"
    reads = ("text",)
    adds = ("lang", "lang_score", "lang_detector")
    Params = LangIdConfig
    section = "langid"

    def setup(self) -> None:
        from stages.langid import LanguageIdentifier

        self._impl = LanguageIdentifier(self.params)

    def apply(self, table: pa.Table) -> pa.Table:
        return self._impl(table)


class QualityStage(TableStage):
    """URL rules, Gopher / C4 / FineWeb heuristics, optional model score, quality_bucket."""

    name = "quality"
    reads = ("text",)
    adds = (*SIGNAL_COLUMNS, "quality_score", "quality_bucket")
    Params = QualityConfig
    section = "quality"

    def setup(self) -> None:
        from stages.quality import QualityFilter

        self._impl = QualityFilter(self.params)

    def apply(self, table: pa.Table) -> pa.Table:
        return self._impl(table)


class SignaturesStage(TableStage):
    """Exact hash and MinHash-LSH band keys for phase 2 (global dedup)."""

    name = "signatures"
    reads = ("text",)
    adds = ("text_hash", "minhash_bands")
    Params = DedupConfig
    section = "dedup"

    def setup(self) -> None:
        from stages.minhash import SignatureStage

        self._impl = SignatureStage(self.params)

    def apply(self, table: pa.Table) -> pa.Table:
        return self._impl(table)


class PiiStage(TableStage):
    """PII scrubbing of ``text`` (phase 3, after global dedup; not in the phase-1 registry)."""

    name = "pii"
    reads = ("text",)
    adds = ("pii_counts", "pii_total")
    Params = PiiConfig
    section = "pii"

    def setup(self) -> None:
        from stages.pii import PiiScrubber

        self._impl = PiiScrubber(self.params)

    def apply(self, table: pa.Table) -> pa.Table:
        return self._impl(table)


class TokenizeStage(TableStage):
    """Token ids per document (phase 3; not in the phase-1 registry)."""

    name = "tokenize"
    reads = ("text",)
    adds = ("tokens", "n_tokens")
    Params = TokenizeConfig
    section = "tokenize"

    def setup(self) -> None:
        from stages.tokenize import Tokenize

        self._impl = Tokenize(self.params)

    @property
    def tokenizer(self) -> Tokenize:
        """The loaded tokenizer (vocab size and hash for the token shards); after setup()."""
        return self._impl

    def apply(self, table: pa.Table) -> pa.Table:
        return self._impl(table)
