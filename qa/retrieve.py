"""Hybrid retrieval: dense (FAISS inner product) and keyword (BM25) scores, fused by weight.

Measured on CMRC 2018 (848 passages): BM25 alone Recall@1 0.968, dense alone 0.929,
reciprocal rank fusion 0.961, weighted score fusion 0.982. Rank fusion throws away how far
ahead the leader is, which is exactly what a weak dense model needs to be outvoted by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bm25 import BM25
from .store import IndexData

# Up to EXACT_UP_TO chunks, every question is compared with every float32 vector. Above,
# with 8-bit codes of the vectors (a quarter of the bytes to read), and the best RESCORE x k
# of those are re-scored on the stored float16 vectors. At 100k passages (benchmarks/
# README.md) that found the exact top 10 for every CMRC question in 3-8 ms on one core, where
# an HNSW graph (M 32, efSearch 128-512) found 0.91-0.94 of it: the synthetic passages there
# come in tight clusters, which a graph walk misses and a full scan does not. The codes take
# 0.1 s to make, so a rebuild that changes one article costs no graph rebuild (89 s).
# A scan is linear in size: past a few hundred thousand passages a graph would pay again.
EXACT_UP_TO = 20_000
RESCORE = 5


def ann_index(vectors: np.ndarray):
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


@dataclass(frozen=True)
class Scored:
    """A chunk with its fused score (0..1) and the two scores it came from."""

    chunk: int
    score: float
    dense: float  # cosine similarity, raw
    keyword: float  # BM25, raw


class Retriever:
    """Searches one loaded index. Built once per load; searching allocates little."""

    def __init__(self, data: IndexData, dense_weight: float = 0.5, candidates: int = 50):
        import faiss

        self.data = data
        self.dense_weight = dense_weight
        self.candidates = candidates
        self.bm25 = BM25(data.keyword_weights())
        if data.ann is not None:
            self.faiss = data.ann
        else:
            # Inner product on unit vectors is cosine similarity; exact search is a few
            # milliseconds up to EXACT_UP_TO chunks.
            self.faiss = faiss.IndexFlatIP(data.dim)
            self.faiss.add(np.ascontiguousarray(data.vectors, dtype=np.float32))
        self.baseline, self.spread = _unrelated_similarity(data.vectors)

    def search(self, query_vector: np.ndarray, query_terms: list[str], k: int) -> list[Scored]:
        """The best `k` chunks, best first, by weighted fusion of normalised scores."""
        n = self.faiss.ntotal
        if n == 0 or k <= 0:
            return []
        want = min(max(self.candidates, k), n)
        q = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
        dense_ids = self.dense(q[0], want)
        keyword = self.bm25.scores(query_terms)
        keyword_ids = np.argpartition(-keyword, want - 1)[:want] if want < n else np.arange(n)
        pool = np.union1d(dense_ids, keyword_ids[keyword[keyword_ids] > 0])
        dense = self.data.vectors[pool].astype(np.float32) @ q[0]
        fused = self.fuse(dense, keyword[pool])
        order = np.argsort(-fused, kind="stable")[:k]
        return [
            Scored(int(pool[i]), float(fused[i]), float(dense[i]), float(keyword[pool[i]]))
            for i in order
        ]

    def dense(self, query_vector: np.ndarray, k: int) -> np.ndarray:
        """Rows of the `k` chunks most similar to the query vector, best first."""
        q = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
        if self.data.ann is None:
            _, ids = self.faiss.search(q, k)
            return ids[0][ids[0] >= 0]
        _, ids = self.faiss.search(q, min(RESCORE * k, self.faiss.ntotal))
        ids = ids[0][ids[0] >= 0]
        similarity = self.data.vectors[ids].astype(np.float32) @ q[0]
        return ids[np.argsort(-similarity, kind="stable")[:k]]

    def fuse(self, dense: np.ndarray, keyword: np.ndarray) -> np.ndarray:
        """Weighted sum of dense and BM25 scores, each scaled to 0..1.

        Dense scores are measured from what unrelated text scores with this model (the
        baseline) up to the best candidate: raw cosines of m3e sit near 0.6 for anything.
        """
        top = dense.max() if dense.size else 0.0
        span = max(top - self.baseline, 1e-6)
        dense_n = np.clip((dense - self.baseline) / span, 0.0, 1.0)
        best = keyword.max() if keyword.size else 0.0
        keyword_n = keyword / best if best > 0 else np.zeros_like(keyword)
        return self.dense_weight * dense_n + (1 - self.dense_weight) * keyword_n


def _unrelated_similarity(vectors: np.ndarray, pairs: int = 2000) -> tuple[float, float]:
    """Mean and spread of similarity between random chunk pairs: what 'unrelated' scores."""
    n = vectors.shape[0]
    if n < 3:
        return 0.0, 0.1
    rng = np.random.default_rng(0)
    a = rng.integers(0, n, pairs)
    b = rng.integers(0, n, pairs)
    keep = a != b
    sims = np.einsum(
        "ij,ij->i", vectors[a[keep]].astype(np.float32), vectors[b[keep]].astype(np.float32)
    )
    return float(sims.mean()), max(float(sims.std()), 0.02)
