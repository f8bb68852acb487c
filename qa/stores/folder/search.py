"""A loaded index folder, searched in memory: exact or 8-bit-scan dense search (FAISS) and
BM25 postings for keywords."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...index.bm25 import BM25
from ...types import Article
from ..data import Candidates, unrelated_similarity
from .disk import FolderData
from .load import ArticleFile

if TYPE_CHECKING:
    import faiss

# Up to EXACT_UP_TO passages, every question is compared with every float32 vector. Above,
# with 8-bit codes of the vectors (a quarter of the bytes to read), and the best RESCORE x k
# of those are re-scored on the stored float16 vectors. At 100k passages (benchmarks/
# README.md) that found the exact top 10 for every CMRC question in 3-8 ms on one core, where
# an HNSW graph (M 32, efSearch 128-512) found 0.91-0.94 of it: the synthetic passages there
# come in tight clusters, which a graph walk misses and a full scan does not. The codes take
# 0.1 s to make, so a rebuild that changes one article costs no graph rebuild (89 s).
# A scan is linear in size: past a few hundred thousand passages a graph would pay again.
EXACT_UP_TO = 20_000
RESCORE = 5


def ann_index(vectors: np.ndarray) -> faiss.Index | None:
    """The approximate-search index a build stores for `vectors`, or None if exact is fast.

    Inner product on unit vectors is cosine similarity. Each dimension is coded in 8 bits
    between its minimum and maximum over the vectors.
    """
    if vectors.shape[0] <= EXACT_UP_TO:
        return None
    import faiss

    index = faiss.IndexScalarQuantizer(
        vectors.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index.train(x)
    index.add(x)
    return index


class FolderIndex:
    """A loaded index folder: FAISS for dense search, BM25 postings for keywords."""

    def __init__(self, data: FolderData):
        import faiss

        self.data = data
        self.passages = data.passages
        self.bm25 = BM25(data.keyword_weights())
        if data.ann is not None:
            self.faiss = data.ann
        else:
            # Inner product on unit vectors is cosine similarity; exact search is a few
            # milliseconds up to EXACT_UP_TO passages.
            self.faiss = faiss.IndexFlatIP(data.passages.dim)
            self.faiss.add(np.ascontiguousarray(data.vectors, dtype=np.float32))
        self.unrelated = unrelated_similarity(len(data.vectors), data.vectors.__getitem__)
        self._ids: dict[str, int] | None = None

    def candidates(self, query_vector: np.ndarray, query_terms: list[str], k: int) -> Candidates:
        """The `k` best passages of each kind (dense, keyword), with both scores."""
        n = self.faiss.ntotal
        want = min(k, n)
        q = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
        if want <= 0:
            return Candidates(
                np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
            )
        dense_ids = self.dense(q[0], want)
        keyword = self.bm25.scores(query_terms)
        keyword_ids = np.argpartition(-keyword, want - 1)[:want] if want < n else np.arange(n)
        pool = np.union1d(dense_ids, keyword_ids[keyword[keyword_ids] > 0])
        dense = self.data.vectors[pool].astype(np.float32) @ q[0]
        return Candidates(pool, dense, keyword[pool])

    def dense(self, query_vector: np.ndarray, k: int) -> np.ndarray:
        """Rows of the `k` passages most similar to the query vector, best first."""
        q = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
        if self.data.ann is None:
            _, ids = self.faiss.search(q, k)
            return ids[0][ids[0] >= 0]
        _, ids = self.faiss.search(q, min(RESCORE * k, self.faiss.ntotal))
        ids = ids[0][ids[0] >= 0]
        similarity = self.data.vectors[ids].astype(np.float32) @ q[0]
        return ids[np.argsort(-similarity, kind="stable")[:k]]

    def keyword(self, query_terms: list[str], k: int) -> np.ndarray:
        """Rows of the `k` passages with the highest BM25 score (above 0), best first."""
        scores = self.bm25.scores(query_terms)
        rows = np.flatnonzero(scores > 0)
        return rows[np.argsort(-scores[rows], kind="stable")[:k]]

    def idf_of(self, term: str) -> float:
        """How rare a keyword token is in the index (BM25 idf)."""
        return self.bm25.idf_of(term)

    def article(self, article_id: str) -> Article:
        """The article with this id (parsed from the file only now); KeyError if none."""
        articles = self.passages.articles
        if isinstance(articles, ArticleFile):
            return articles[articles.position(article_id)].article
        if self._ids is None:
            self._ids = {a.article.id: i for i, a in enumerate(articles)}
        return articles[self._ids[article_id]].article
