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

# Exact search reads every vector for every question; past this many chunks an HNSW graph
# answers in a fraction of the time with recall@10 above 0.99 against exact
# (benchmarks/README.md). HNSW_M links per node, HNSW_EF_* the beam widths of build and search.
EXACT_UP_TO = 20_000
HNSW_M = 32
HNSW_EF_BUILD = 80
HNSW_EF_SEARCH = 128


def ann_index(vectors: np.ndarray):
    """The approximate-search index a build stores for `vectors`, or None if exact is fast.

    Inner product on unit vectors is cosine similarity; the graph keeps its vectors in
    half precision like the index does.
    """
    if vectors.shape[0] <= EXACT_UP_TO:
        return None
    import faiss

    index = faiss.IndexHNSWSQ(
        vectors.shape[1], faiss.ScalarQuantizer.QT_fp16, HNSW_M, faiss.METRIC_INNER_PRODUCT
    )
    index.hnsw.efConstruction = HNSW_EF_BUILD
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index.train(x[:1])  # half precision needs no statistics; faiss still wants the call
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
        self.bm25 = BM25(data.terms)
        if data.ann is not None:
            self.faiss = data.ann
            faiss.ParameterSpace().set_index_parameter(self.faiss, "efSearch", HNSW_EF_SEARCH)
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
        _, dense_ids = self.faiss.search(q, want)
        keyword = self.bm25.scores(query_terms)
        keyword_ids = np.argpartition(-keyword, want - 1)[:want] if want < n else np.arange(n)
        pool = np.union1d(dense_ids[0][dense_ids[0] >= 0], keyword_ids[keyword[keyword_ids] > 0])
        dense = self.data.vectors[pool].astype(np.float32) @ q[0]
        fused = self.fuse(dense, keyword[pool])
        order = np.argsort(-fused, kind="stable")[:k]
        return [
            Scored(int(pool[i]), float(fused[i]), float(dense[i]), float(keyword[pool[i]]))
            for i in order
        ]

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

    def dense_z(self, similarity: float) -> float:
        """How far above unrelated text a similarity is, in standard deviations."""
        return (similarity - self.baseline) / self.spread


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
