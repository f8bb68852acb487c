"""Hybrid retrieval, whatever the store: dense and keyword (BM25) scores, fused by weight.

Measured on CMRC 2018 (848 passages): BM25 alone Recall@1 0.968, dense alone 0.929,
reciprocal rank fusion 0.961, weighted score fusion 0.982. Rank fusion throws away how far
ahead the leader is, which is exactly what a weak dense model needs to be outvoted by.

A store's index (qa/stores/) finds the candidates and their two raw scores; this module
ranks them, so both stores rank alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Vectors are stored and held in half precision: half the disk and memory, and on CMRC the
# same retrieval and answer figures as float32 (benchmarks/README.md). Every store rounds
# them so, and so scores passages alike.
VECTOR_DTYPE = np.float16


@dataclass(frozen=True)
class Scored:
    """A passage (`row`: its row in the index) with its fused score (0..1) and the two
    scores it came from."""

    row: int
    score: float
    dense: float  # cosine similarity, raw
    keyword: float  # BM25, raw


@dataclass(frozen=True)
class Candidates:
    """The passages a store found for one question, rows ascending, with both raw scores."""

    rows: np.ndarray  # int
    dense: np.ndarray  # float32 cosine similarity of each
    keyword: np.ndarray  # float32 BM25 of each (0 where none of the terms occur)


class Retriever:
    """Ranks the candidates an index finds. Built once per load; searching allocates little."""

    def __init__(self, index, dense_weight: float = 0.5, candidates: int = 50):
        self.index = index
        self.dense_weight = dense_weight
        self.candidates = candidates
        self.baseline = index.unrelated

    def search(self, query_vector: np.ndarray, query_terms: list[str], k: int) -> list[Scored]:
        """The best `k` passages, best first, by weighted fusion of normalised scores."""
        if k <= 0:
            return []
        found = self.index.candidates(query_vector, query_terms, max(self.candidates, k))
        if not len(found.rows):
            return []
        fused = self.fuse(found.dense, found.keyword)
        order = np.argsort(-fused, kind="stable")[:k]
        return [
            Scored(
                int(found.rows[i]), float(fused[i]), float(found.dense[i]), float(found.keyword[i])
            )
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
