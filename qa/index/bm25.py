"""Okapi BM25 over token ids, stored as plain sparse arrays.

Term counts are kept term-major (`Postings`): a query adds up the weights of a few postings
lists, computed from the counts as it reads them (not a loop over documents), a rebuild
extends the lists rather than counting every passage again, and a load only maps arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# Lower than the textbook 1.2 / 0.75 (these are Anserini's defaults): repeated terms and long
# paragraphs count for less. Measured with words + character grams: DRCD Recall@1 0.955 ->
# 0.959, CMRC unchanged (docs/how-it-works.md, "Finding passages").
K1 = 0.9
B = 0.4


@dataclass(frozen=True)
class TermCounts:
    """Bag of words of many documents: a CSR matrix (documents x vocabulary)."""

    vocab: tuple[str, ...]
    matrix: sp.csr_matrix

    @staticmethod
    def from_documents(docs: list[list[str]], vocab: dict[str, int] | None = None) -> TermCounts:
        """Count tokens; `vocab` (term -> id) is extended in place with unseen terms."""
        vocab = {} if vocab is None else vocab
        indptr = [0]
        ids: list[int] = []
        tfs: list[int] = []
        for doc in docs:
            counts: dict[int, int] = {}
            for term in doc:
                tid = vocab.setdefault(term, len(vocab))
                counts[tid] = counts.get(tid, 0) + 1
            for tid in sorted(counts):
                ids.append(tid)
                tfs.append(counts[tid])
            indptr.append(len(ids))
        matrix = sp.csr_matrix(
            (
                np.asarray(tfs, dtype=np.float32),
                np.asarray(ids, dtype=np.int32),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(docs), len(vocab)),
        )
        return TermCounts(tuple(sorted(vocab, key=vocab.__getitem__)), matrix)


@dataclass(frozen=True)
class Postings:
    """Term counts, term-major: for each term the documents holding it (ascending) and how
    often. What the BM25 weights derive from, and what a rebuild extends in place of
    counting every passage again: new documents are inserted into each term's list,
    dropped ones filtered out, and nothing is sorted but the new postings."""

    vocab: tuple[str, ...]
    indptr: np.ndarray  # int64, len = terms + 1: postings of term t are [indptr[t], indptr[t+1])
    docs: np.ndarray  # int32 document of each posting, ascending within a term
    tf: np.ndarray  # count of each posting: uint8 or uint16, float32 if one exceeds 65,535
    lengths: np.ndarray  # float32 per document: its number of tokens

    @property
    def n_docs(self) -> int:
        return len(self.lengths)

    @staticmethod
    def from_counts(counts: TermCounts) -> Postings:
        """The postings of a document-major count matrix."""
        tf = counts.matrix.tocsr()
        lengths = np.asarray(tf.sum(axis=1), dtype=np.float32).ravel()
        by_term = tf.tocsc()
        by_term.sort_indices()
        return Postings(
            vocab=tuple(counts.vocab),
            indptr=by_term.indptr.astype(np.int64),
            docs=by_term.indices.astype(np.int32, copy=False),
            tf=_compact_counts(by_term.data),
            lengths=lengths,
        )

    def merged(
        self, row_of: np.ndarray, n_docs: int, new_rows: np.ndarray, new: TermCounts
    ) -> Postings:
        """These postings renumbered into a collection of `n_docs` documents, with `new`'s.

        `row_of[d]` is the new number of document d, or -1 for one dropped; it must keep the
        kept documents in order (a build keeps articles in id order). `new_rows[i]` is the
        number of `new`'s document i (ascending). `new.vocab` extends this vocabulary (its
        first terms are this one's, in order). Terms no document holds any more are dropped.
        """
        if len(new.vocab) < len(self.vocab) or new.vocab[: len(self.vocab)] != self.vocab:
            raise ValueError("the new counts do not extend this vocabulary")
        row_of = np.asarray(row_of, dtype=np.int32)
        if (np.diff(row_of[row_of >= 0]) <= 0).any():
            raise ValueError("kept documents must keep their order")
        indptr, docs, tf = self.indptr, self.docs, self.tf
        if not np.array_equal(row_of, np.arange(len(row_of), dtype=np.int32)):
            docs = row_of[docs]  # each kept document's new number (in the same order)
            if (row_of < 0).any():  # dropped documents leave their terms' lists
                alive = docs >= 0
                indptr = np.concatenate(([0], np.cumsum(alive, dtype=np.int64)))[indptr]
                docs, tf = docs[alive], tf[alive]
        n_terms = len(new.vocab)
        indptr = np.concatenate((indptr, np.full(n_terms - len(self.vocab), indptr[-1])))
        lengths = np.zeros(n_docs, dtype=np.float32)
        kept = row_of >= 0
        lengths[row_of[kept]] = self.lengths[kept]
        if new.matrix.shape[0]:
            fresh = Postings.from_counts(new)
            lengths[new_rows] = fresh.lengths
            fresh_docs = fresh.docs
            if not np.array_equal(new_rows, np.arange(n_docs)):
                fresh_docs = np.asarray(new_rows, dtype=np.int32)[fresh_docs]
            fresh_indptr = np.pad(fresh.indptr, (0, n_terms + 1 - len(fresh.indptr)), "edge")
            if len(docs):
                # Where each new posting goes in its term's list (its documents ascend).
                at = np.empty(len(fresh_docs), dtype=np.int64)
                for t in np.flatnonzero(np.diff(fresh_indptr)).tolist():
                    lo, hi = fresh_indptr[t], fresh_indptr[t + 1]
                    old = docs[indptr[t] : indptr[t + 1]]
                    at[lo:hi] = indptr[t] + np.searchsorted(old, fresh_docs[lo:hi])
                docs = _insert(docs, at, fresh_docs)
                tf = _insert(tf, at, fresh.tf)
            else:
                docs, tf = fresh_docs, fresh.tf
            indptr = indptr + fresh_indptr
        used = np.flatnonzero(np.diff(indptr))
        if len(used) < n_terms:
            vocab = tuple(new.vocab[t] for t in used.tolist())
            indptr = np.concatenate(([0], np.cumsum(np.diff(indptr)[used])))
        else:
            vocab = tuple(new.vocab)
        docs = np.asarray(docs, dtype=np.int32)
        return Postings(vocab, indptr.astype(np.int64), docs, _compact_counts(tf), lengths)

    def idf(self) -> np.ndarray:
        """Inverse document frequency of each term (float32)."""
        df = np.diff(self.indptr).astype(np.float32)
        # The "plus one" idf of Lucene: never negative, so common terms still count a little.
        return np.log1p((self.n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)

    def norms(self) -> np.ndarray:
        """K1 * (1 - B + B * length / average length) of each document (float32)."""
        avg = float(self.lengths.mean()) if self.n_docs else 0.0
        return (K1 * (1 - B + B * self.lengths / max(avg, 1e-9))).astype(np.float32)

    def bounds(self) -> np.ndarray:
        """Each term's highest BM25 weight (float32): what BM25.top may skip.

        Computed a million postings at a time (a million passages have 350 million: each
        step's arrays stay in the CPU's cache), with the operations of `weights_of`.
        """
        idf, norms = self.idf(), self.norms()
        saturation = np.empty(len(self.docs), dtype=np.float32)
        step = 1 << 20
        for lo in range(0, len(self.docs), step):
            saturation[lo : lo + step] = _saturation(
                self.tf[lo : lo + step], norms[self.docs[lo : lo + step]]
            )
        bound = np.zeros(len(self.vocab), dtype=np.float32)
        used = np.flatnonzero(np.diff(self.indptr))
        if len(used):
            # idf * max(x) is max(idf * x): rounding keeps the order of positive products.
            bound[used] = idf[used] * np.maximum.reduceat(saturation, self.indptr[used])
        return bound


def _saturation(tf: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """tf * (K1 + 1) / (tf + norm), in float32; `norm` (a fresh array) is overwritten."""
    data = tf.astype(np.float32)
    norm += data
    data *= np.float32(K1 + 1)
    data /= norm
    return data


def _compact_counts(tf: np.ndarray) -> np.ndarray:
    """Counts in the fewest bytes that hold every one: 8 or 16-bit integers, else float32."""
    top = tf.max() if len(tf) else 0
    for kind in (np.uint8, np.uint16):
        if top <= np.iinfo(kind).max:
            return tf.astype(kind, copy=False)
    return tf.astype(np.float32, copy=False)


def _insert(array: np.ndarray, at: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`np.insert(array, at, values)` for ascending `at`, copying the stretches between
    the distinct places in one slice each: a rebuild's new passages land at the end of
    most terms' lists, a few hundred thousand places among 350 million postings, where
    np.insert's masks over the whole array took 9 s."""
    kind = np.result_type(array, values)
    places, firsts = np.unique(at, return_index=True)
    if len(places) > len(array) // 256:  # places everywhere: masks are as good
        return np.insert(array.astype(kind, copy=False), at, values)
    out = np.empty(len(array) + len(values), dtype=kind)
    lasts = np.append(firsts[1:], len(values))
    done = written = 0
    for place, first, last in zip(places.tolist(), firsts.tolist(), lasts.tolist(), strict=True):
        out[written : written + place - done] = array[done:place]
        written += place - done
        out[written : written + last - first] = values[first:last]
        written += last - first
        done = place
    out[written:] = array[done:]
    return out


class BM25:
    """Scores documents for a query: a few postings lists added into one array.

    Each posting's weight is computed when a query reads it, from its count and its
    document's length: a build then writes no weights (1.4 GB at a million passages) and a
    rebuild does not derive them all again. The float32 operations are those the weights
    were stored with before (the same floats, tests/index/test_bm25.py).
    """

    def __init__(self, terms: TermCounts | Postings, bound: np.ndarray | None = None):
        postings = terms if isinstance(terms, Postings) else Postings.from_counts(terms)
        self.vocab = {term: i for i, term in enumerate(postings.vocab)}
        self._postings = postings
        self.idf = postings.idf()
        self._norms = postings.norms()
        self.n_docs = postings.n_docs
        # Each term's highest weight: stored by the build, else found here.
        self._bound = bound if bound is not None else postings.bounds()

    def weights_of(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The documents holding term t (ascending) and the term's BM25 weight in each."""
        p = self._postings
        lo, hi = p.indptr[t], p.indptr[t + 1]
        docs = p.docs[lo:hi]
        weights = _saturation(p.tf[lo:hi], self._norms[docs])
        weights *= self.idf[t]
        return docs, weights

    def _looked_up(self, t: int, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of `docs` (ascending) hold term t, and its weight in each of those: only
        they are read of the term's postings."""
        p = self._postings
        lo, hi = p.indptr[t], p.indptr[t + 1]
        found, at = _find(p.docs[lo:hi], docs)
        weights = _saturation(p.tf[lo:hi][at], self._norms[docs[found]])
        weights *= self.idf[t]
        return found, weights

    def term_ids(self, terms: list[str]) -> np.ndarray:
        """Known ids of `terms`, each once."""
        ids = {self.vocab[t] for t in terms if t in self.vocab}
        return np.fromiter(sorted(ids), dtype=np.int64, count=len(ids))

    def scores(self, terms: list[str]) -> np.ndarray:
        """BM25 score of every document for the query terms (0 where none match)."""
        out = np.zeros(self.n_docs, dtype=np.float32)
        for t in self.term_ids(terms):
            docs, weights = self.weights_of(t)
            out[docs] += weights  # a term lists each document once
        return out

    def scores_of(self, terms: list[str], docs: np.ndarray) -> np.ndarray:
        """BM25 scores of the documents `docs` (ascending), equal to `scores(terms)[docs]`:
        the same additions in the same order, looked up in each postings list."""
        out = np.zeros(len(docs), dtype=np.float32)
        for t in self.term_ids(terms):
            found, weights = self._looked_up(t, docs)
            out[found] += weights
        return out

    def top(self, terms: list[str], k: int) -> np.ndarray:
        """The `k` documents with the highest score (above 0), best first: those of
        `scores(terms)`, without adding up every posting of very common terms.

        At a million passages a question's character grams touch about three postings per
        passage, nine in ten of them in grams most passages hold (的, 年, 是 ...), whose
        weights are tiny. Terms are added from the rarest on; once the k-th best score so
        far exceeds the most that all the terms left could still add, no passage they alone
        hold can reach the top k, and only the passages found so far are completed (by
        looking their documents up in the postings left). This is max-score pruning: the
        result is the exact top k, not an approximation.
        """
        indptr = self._postings.indptr
        ids = self.term_ids(terms)
        if not len(ids) or k <= 0:
            return np.zeros(0, dtype=np.int64)
        lengths = indptr[ids + 1] - indptr[ids]
        ids = ids[np.argsort(lengths, kind="stable")]  # the rarest, cheapest terms first
        bounds = np.array([self._bound_of(t) for t in ids], dtype=np.float64)
        # What terms j.. can add at most, with a margin for float32 rounding of the sums.
        left = np.concatenate((np.cumsum(bounds[::-1])[::-1], [0.0])) * (1 + 1e-5) + 1e-6
        acc = np.zeros(self.n_docs, dtype=np.float32)
        seen = np.zeros(self.n_docs, dtype=bool)
        found: list[np.ndarray] = []
        done = len(ids)
        checked = np.inf  # what the terms left could add when the k-th best was last found
        for j, t in enumerate(ids):
            docs, weights = self.weights_of(t)
            acc[docs] += weights
            fresh = docs[~seen[docs]]
            seen[fresh] = True
            found.append(fresh)
            # Finding the k-th best costs a pass over the passages found: only when stopping
            # is possible (the terms added could outweigh those left) and the bound has
            # fallen by a third since the last try, so a question of common terms only
            # pays for a few tries, not one per term.
            if j + 1 < len(ids) and left[j + 1] < min(left[0] - left[j + 1], 0.67 * checked):
                checked = left[j + 1]
                rows = np.concatenate(found)
                if len(rows) >= k and np.partition(acc[rows], -k)[-k] > left[j + 1]:
                    done = j + 1
                    break
        rows = np.concatenate(found)
        scores = acc[rows]
        for j in range(done, len(ids)):
            # Complete the passages that can still reach the k-th best, dropping the rest
            # as the k-th best so far rises: each term left is looked up for fewer.
            if len(rows) >= k:
                keep = scores + left[j] >= np.partition(scores, -k)[-k]
                rows, scores = rows[keep], scores[keep]
            hit, weights = self._looked_up(ids[j], rows)
            scores[hit] += weights
        positive = scores > 0
        rows, scores = rows[positive], scores[positive]
        if len(rows) > k:  # the k best; of equal scores the first rows, as a stable sort
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            above = np.flatnonzero(scores > kth)
            tied = np.flatnonzero(scores == kth)
            tied = tied[np.argsort(rows[tied])][: k - len(above)]
            pick = np.concatenate((above, tied))
            rows, scores = rows[pick], scores[pick]
        return rows[np.lexsort((rows, -scores))]

    def _bound_of(self, t: int) -> float:
        return float(self._bound[t])

    def idf_of(self, term: str) -> float:
        """Inverse document frequency of a term; unseen terms count as the rarest."""
        tid = self.vocab.get(term)
        if tid is None:
            return float(np.log1p((self.n_docs + 0.5) / 0.5))
        return float(self.idf[tid])


def _find(postings: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of `docs` (ascending) a postings list holds, and where: (mask, positions)."""
    at = np.searchsorted(postings, docs)
    inside = at < len(postings)
    hit = np.zeros(len(docs), dtype=bool)
    hit[inside] = postings[at[inside]] == docs[inside]
    return hit, at[hit]
