"""The keyword index of large indexes finds its best passages without adding up the
postings of very common terms (BM25.top, issue 23): always the exact best k."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qa.index.bm25 import BM25, TermCounts, TermWeights


def zipf_corpus(docs: int, vocab: int, seed: int) -> list[list[str]]:
    """Documents whose terms follow Zipf's law, as character grams do: a few terms in almost
    every document, most in a handful."""
    rng = np.random.default_rng(seed)
    return [
        [f"t{t}" for t in np.minimum(rng.zipf(1.3, rng.integers(20, 120)), vocab)]
        for _ in range(docs)
    ]


def best(scores: np.ndarray, k: int) -> list[int]:
    rows = np.flatnonzero(scores > 0)
    return rows[np.argsort(-scores[rows], kind="stable")[:k]].tolist()


@pytest.mark.parametrize("k", [1, 10, 50])
def test_top_is_the_exact_best_k_of_the_full_scores(k):
    docs = zipf_corpus(3000, 5000, seed=k)
    weights = TermWeights.from_counts(TermCounts.from_documents(docs))
    bm25 = BM25(weights)
    unbounded = BM25(dataclasses.replace(weights, bound=None))  # an index stored before bounds
    rng = np.random.default_rng(100 + k)
    for _ in range(60):
        # A question's terms: some common (t1, t2 ... are in most documents), some rare.
        query = [f"t{t}" for t in rng.zipf(1.2, rng.integers(1, 30))] + ["unknown"]
        scores = bm25.scores(query)
        top = bm25.top(query, k)
        assert sorted(top.tolist()) == sorted(best(scores, k))
        assert unbounded.top(query, k).tolist() == top.tolist()
        assert np.array_equal(scores[np.sort(top)], bm25.scores_of(query, np.sort(top)))


def test_top_with_nothing_to_find_is_empty():
    bm25 = BM25(TermCounts.from_documents([["甲", "乙"], ["乙"]]))
    assert bm25.top(["丙"], 10).tolist() == []
    assert bm25.top([], 10).tolist() == []
    assert bm25.top(["甲"], 10).tolist() == [0]
    assert bm25.top(["乙"], 1).tolist() in ([0], [1])


def test_top_finds_the_rare_term_among_thousands_of_equal_common_ones():
    docs = [["common"] * 3 for _ in range(2000)] + [["common", "rare"]] * 5
    bm25 = BM25(TermCounts.from_documents(docs))

    top = bm25.top(["rare", "common"], 5)

    assert sorted(top.tolist()) == list(range(2000, 2005))
    assert len(bm25.top(["rare", "common"], 50)) == 50  # then common-only ties


def test_each_terms_highest_weight_is_stored_with_the_postings():
    weights = TermWeights.from_counts(
        TermCounts.from_documents([["甲", "乙", "乙"], ["乙"], ["丙"] * 4, []])
    )
    for t in range(len(weights.vocab)):
        lo, hi = weights.indptr[t], weights.indptr[t + 1]
        assert weights.bound[t] == weights.weights[lo:hi].max()
