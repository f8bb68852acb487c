"""What answering reads of an index, whatever the store: the passages' places and sentences,
the articles, and what the index was built with. The vectors and keyword postings stay
with the store (qa/stores/folder/, milvus/), which searches them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..types import Article, IndexedPassage, IndexInfo, Span, StoredArticle

FORMAT_VERSION = 1  # of what a store keeps; an index of another format is rebuilt
# Vectors are stored and held in half precision: half the disk and memory, and on CMRC the
# same retrieval and answer figures as float32 (benchmarks/README.md). Every store rounds
# them so, and so scores passages alike.
VECTOR_DTYPE = np.float16


@dataclass(frozen=True)
class Candidates:
    """The passages a store found for one question, rows ascending, with both raw scores."""

    rows: np.ndarray  # int
    dense: np.ndarray  # float32 cosine similarity of each
    keyword: np.ndarray  # float32 BM25 of each (0 where none of the terms occur)


@dataclass(frozen=True)
class Passages:
    """The passages of one index, in row order (the rows a search returns).

    Passage i covers `paragraph_text[start[i]:end[i]]` of paragraph `paragraph[i]` of
    `articles[article[i]]`; its sentences are `sentence_start/end[sentence_ptr[i]:
    sentence_ptr[i+1]]` (offsets into the paragraph).
    """

    model: str
    backend: str  # what computed the vectors (qa/index/onnx.py): questions are embedded alike
    dim: int
    articles: Sequence[StoredArticle]  # a tuple, or an ArticleFile when loaded from a folder
    article: np.ndarray  # int32 per passage: its article's row in `articles`
    paragraph: np.ndarray  # int32
    start: np.ndarray  # int32
    end: np.ndarray  # int32
    sentence_ptr: np.ndarray  # int64, len = passages + 1
    sentence_start: np.ndarray  # int32
    sentence_end: np.ndarray  # int32
    char_df: dict[str, int]  # in how many passages each character occurs (for sentence choice)
    built_at: str = ""

    def __len__(self) -> int:
        return int(self.article.shape[0])

    def article_at(self, row: int) -> Article:
        """The article that passage `row` belongs to."""
        return self.articles[self.article[row]].article

    def paragraph_at(self, row: int) -> str:
        """The whole paragraph that passage `row` is (a window of)."""
        return self.article_at(row).paragraphs[self.paragraph[row]]

    def passage(self, row: int) -> IndexedPassage:
        """Passage `row`: where it is in its article, its text, its sentences."""
        article = self.article_at(row)
        p, start, end = int(self.paragraph[row]), int(self.start[row]), int(self.end[row])
        lo, hi = self.sentence_ptr[row], self.sentence_ptr[row + 1]
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
        """How many articles, paragraphs, passages and sentences (a manifest records them)."""
        paragraphs = getattr(self.articles, "paragraphs", None)  # an ArticleFile knows it
        if paragraphs is None:
            paragraphs = sum(a.paragraph_count for a in self.articles)
        return {
            "articles": len(self.articles),
            "paragraphs": paragraphs,
            "passages": len(self),
            "sentences": int(self.sentence_start.shape[0]),
        }


def unrelated_similarity(
    n: int, vectors_of: Callable[[np.ndarray], np.ndarray], pairs: int = 2000
) -> float:
    """Mean similarity between random pairs of the `n` passages: what 'unrelated' scores.

    `vectors_of(rows)` gives the vectors of some rows: only the sampled ones are read.
    """
    if n < 3:
        return 0.0
    rng = np.random.default_rng(0)
    a = rng.integers(0, n, pairs)
    b = rng.integers(0, n, pairs)
    keep = a != b
    a, b = a[keep], b[keep]
    rows = np.unique(np.concatenate([a, b]))
    vectors = np.asarray(vectors_of(rows), dtype=np.float32)
    pa, pb = np.searchsorted(rows, a), np.searchsorted(rows, b)
    sims = np.einsum("ij,ij->i", vectors[pa], vectors[pb])
    return float(sims.mean())
