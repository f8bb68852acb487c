"""The keyword index of large indexes finds its best passages without adding up the
postings of very common terms (BM25.top, issue 23): always the exact best k."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from qa.index.bm25 import BM25, Postings, TermCounts


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
    postings = Postings.from_counts(TermCounts.from_documents(docs))
    bm25 = BM25(postings)
    # Bounds only need to be at least the highest weight: looser ones prune less, the same.
    loose = BM25(postings, bound=postings.bounds() * 1.5)
    rng = np.random.default_rng(100 + k)
    for _ in range(60):
        # A question's terms: some common (t1, t2 ... are in most documents), some rare.
        query = [f"t{t}" for t in rng.zipf(1.2, rng.integers(1, 30))] + ["unknown"]
        scores = bm25.scores(query)
        top = bm25.top(query, k)
        assert sorted(top.tolist()) == sorted(best(scores, k))
        assert loose.top(query, k).tolist() == top.tolist()
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


def test_each_terms_bound_is_its_highest_weight():
    postings = Postings.from_counts(
        TermCounts.from_documents([["甲", "乙", "乙"], ["乙"], ["丙"] * 4, [], ["甲"] * 3])
    )
    bm25 = BM25(postings)
    for t in range(len(postings.vocab)):
        assert postings.bounds()[t] == bm25.weights_of(t)[1].max()


def all_weights(bm25: BM25) -> tuple[list[int], list[int], bytes]:
    """Every posting's weight as queries compute it: term-major (indptr, docs, weights)."""
    indptr, docs, weights = [0], [], []
    for t in range(len(bm25.vocab)):
        d, w = bm25.weights_of(t)
        docs += d.tolist()
        weights.append(w)
        indptr.append(len(docs))
    return indptr, docs, np.concatenate(weights).tobytes()


def doc_major_weights(counts: TermCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BM25 weights as they were derived before the counts were kept term-major (per
    passage, then transposed): what every index up to then stored."""
    from qa.index.bm25 import K1, B

    tf = counts.matrix.tocsr()
    data = tf.data.astype(np.float32)
    lengths = np.asarray(tf.sum(axis=1), dtype=np.float32).ravel()
    avg = float(lengths.mean())
    df = np.bincount(tf.indices, minlength=tf.shape[1]).astype(np.float32)
    idf = np.log1p((tf.shape[0] - df + 0.5) / (df + 0.5)).astype(np.float32)
    norm = np.repeat(
        (K1 * (1 - B + B * lengths / max(avg, 1e-9))).astype(np.float32), np.diff(tf.indptr)
    )
    norm += data
    scale = data * np.float32(K1 + 1)
    scale /= norm
    weights = idf[tf.indices] * scale
    by_term = sp.csr_matrix((weights, tf.indices, tf.indptr), shape=tf.shape).tocsc()
    by_term.sort_indices()
    return by_term.indptr, by_term.indices, by_term.data


def test_weights_are_the_same_floats_as_derived_per_passage():
    """What every index stored before (and every evaluation was measured with) is what a
    query now computes from the counts, to the bit."""
    counts = TermCounts.from_documents(zipf_corpus(2000, 3000, seed=5))
    indptr, docs, data = doc_major_weights(counts)
    assert all_weights(BM25(counts)) == (
        indptr.tolist(),
        docs.tolist(),
        data.astype(np.float32).tobytes(),
    )


def by_term(bm25: BM25, names: list[str]) -> dict[tuple[str, str], float]:
    """Each posting's weight, by (term, document name): comparable across numberings."""
    out = {}
    for term, t in bm25.vocab.items():
        docs, weights = bm25.weights_of(t)
        for d, w in zip(docs.tolist(), weights.tolist(), strict=True):
            out[term, names[d]] = w
    return out


def test_merged_postings_are_those_of_counting_the_new_collection_again():
    """A rebuild renumbers the kept documents, drops some, inserts new ones among them and
    adds new terms: its postings, lengths and weights are exactly a fresh count's."""
    rng = np.random.default_rng(3)
    old_docs = zipf_corpus(600, 800, seed=11)
    old = Postings.from_counts(TermCounts.from_documents(old_docs))
    keep = rng.random(len(old_docs)) > 0.2
    keep[0] = False  # the first dropped too
    added = [doc + [f"new{len(doc) % 7}"] for doc in zipf_corpus(150, 900, seed=12)]
    # The new collection: kept documents in their order, new ones placed among them.
    slots = sorted(rng.choice(int(keep.sum()) + len(added), len(added), replace=False))
    names_old = [f"o{i}" for i in range(len(old_docs))]
    kept_names = [n for n, k in zip(names_old, keep, strict=False) if k]
    names, docs, new_rows, kept_iter, added_iter = (
        [],
        [],
        [],
        iter(kept_names),
        iter(range(len(added))),
    )
    for row in range(len(kept_names) + len(added)):
        if slots and row == slots[0]:
            slots.pop(0)
            i = next(added_iter)
            names.append(f"n{i}")
            docs.append(added[i])
            new_rows.append(row)
        else:
            name = next(kept_iter)
            names.append(name)
            docs.append(old_docs[int(name[1:])])
    row_of = np.full(len(old_docs), -1)
    row_of[np.flatnonzero(keep)] = [names.index(n) for n in kept_names]
    vocab = {t: i for i, t in enumerate(old.vocab)}
    new = TermCounts.from_documents([added[int(names[r][1:])] for r in new_rows], vocab)

    merged = old.merged(row_of, len(docs), np.array(new_rows), new)
    fresh = Postings.from_counts(TermCounts.from_documents(docs))

    assert merged.lengths.tobytes() == fresh.lengths.tobytes()
    assert sorted(merged.vocab) == sorted(fresh.vocab)  # terms only dropped docs held: gone
    a, b = BM25(merged), BM25(fresh)
    assert by_term(a, names) == by_term(b, names)  # every weight, to the bit
    for t in range(len(merged.vocab)):
        docs, weights = a.weights_of(t)
        assert (np.diff(docs) > 0).all()  # each list ascends (BM25.top relies on it)
        assert merged.bounds()[t] == weights.max()
    query = ["t1", "t2", "t7", "new3", "t40"]
    assert np.array_equal(a.scores(query), b.scores(query))


def test_merging_refuses_documents_out_of_order():
    old = Postings.from_counts(TermCounts.from_documents([["甲"], ["乙"]]))
    empty = TermCounts.from_documents([], {t: i for i, t in enumerate(old.vocab)})
    with pytest.raises(ValueError, match="order"):
        old.merged(np.array([1, 0]), 2, np.zeros(0, np.int64), empty)


@pytest.mark.parametrize("places", [1, 30, 3000])
def test_inserting_at_a_few_or_many_places_is_what_numpy_inserts(places):
    from qa.index.bm25 import _insert

    rng = np.random.default_rng(places)
    array = rng.integers(0, 1000, 20_000).astype(np.int32)
    at = np.sort(rng.choice(np.arange(len(array) + 1), places))
    at = np.sort(np.concatenate((at, at[: places // 2], [0, len(array)])))  # repeats, ends
    values = rng.integers(0, 255, len(at)).astype(np.uint8)

    out = _insert(array, at, values)

    assert out.dtype == np.int32
    assert out.tolist() == np.insert(array, at, values).tolist()
