"""What every store's index holds in memory: the passages' places, their sentences, the
articles, the vectors (or a stand-in where they stay in the store) and the keyword counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..index.bm25 import TermCounts, TermWeights
from ..types import Article, IndexedPassage, IndexInfo, Span, StoredArticle

FORMAT_VERSION = 1  # of what a store keeps; an index of another format is rebuilt


@dataclass(frozen=True)
class IndexData:
    """The passages of one index, as a folder build writes them and any store loads them.

    Passage i covers `paragraph_text[passage_start[i]:passage_end[i]]` of paragraph
    `passage_paragraph[i]` of article `passage_article[i]`; its sentences are
    `sentence_start/end[sentence_ptr[i]:sentence_ptr[i+1]]` (paragraph offsets).
    """

    model: str
    articles: Sequence[StoredArticle]  # a tuple, or an ArticleFile when loaded
    passage_article: np.ndarray  # int32, index into articles
    passage_paragraph: np.ndarray  # int32
    passage_start: np.ndarray  # int32
    passage_end: np.ndarray  # int32
    passage_hash: np.ndarray  # S16: hash of what was embedded, to reuse vectors
    sentence_ptr: np.ndarray  # int64, len = passages + 1
    sentence_start: np.ndarray  # int32
    sentence_end: np.ndarray  # int32
    vectors: np.ndarray  # VECTOR_DTYPE (passages, dim), unit length
    terms: TermCounts | None  # keyword tokens of each passage; None when loaded for queries
    char_df: dict[str, int]  # in how many passages each character occurs (for sentence choice)
    settings: dict  # build settings that change what is stored (passage size, tokenizer)
    built_at: str = ""
    build_seconds: float = 0.0
    backend: str = "torch"  # what computed the vectors (see qa/index/onnx.py); a change re-embeds
    ann: object = None  # a faiss index over `vectors` for large indexes, else None (exact)
    weights: TermWeights | None = None  # BM25 postings as stored; None: derive from `terms`

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.terms.vocab if self.terms is not None else self.weights.vocab

    def keyword_weights(self) -> TermWeights:
        """The BM25 postings: as stored, or derived from the term counts."""
        return self.weights if self.weights is not None else TermWeights.from_counts(self.terms)

    def article_at(self, passage: int) -> Article:
        """The article that passage row `passage` belongs to."""
        return self.articles[self.passage_article[passage]].article

    def paragraph_at(self, passage: int) -> str:
        """The whole paragraph that passage row `passage` is (a window of)."""
        return self.article_at(passage).paragraphs[self.passage_paragraph[passage]]

    def passage(self, i: int) -> IndexedPassage:
        """Passage row `i`: where it is in its article, its text, its sentences."""
        article = self.article_at(i)
        p, start, end = (
            int(self.passage_paragraph[i]),
            int(self.passage_start[i]),
            int(self.passage_end[i]),
        )
        lo, hi = self.sentence_ptr[i], self.sentence_ptr[i + 1]
        spans = self.sentence_start[lo:hi].tolist(), self.sentence_end[lo:hi].tolist()
        sentences = tuple(map(Span, *spans))
        return IndexedPassage(
            article.id, p, start, end, article.paragraphs[p][start:end], sentences
        )

    def info(self) -> IndexInfo:
        counts = self.counts()
        return IndexInfo(
            model=self.model,
            backend=self.backend,
            dim=self.dim,
            built_at=self.built_at,
            articles=counts["articles"],
            paragraphs=counts["paragraphs"],
            passages=counts["passages"],
        )

    def counts(self) -> dict[str, int]:
        """As the manifest records them."""
        paragraphs = getattr(self.articles, "paragraphs", None)  # an ArticleFile knows it
        if paragraphs is None:
            paragraphs = sum(len(a.article.paragraphs) for a in self.articles)
        return {
            "articles": len(self.articles),
            "paragraphs": paragraphs,
            "passages": int(self.passage_article.shape[0]),
            "sentences": int(self.sentence_start.shape[0]),
            "terms": len(self.vocab),
        }
