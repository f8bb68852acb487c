"""Okapi BM25 over token ids, stored as plain sparse arrays.

Documents are kept as term counts (doc-major CSR) so an incremental build can reuse the
tokens of unchanged text; the term-major weights are derived from them once, at build time,
and stored beside them, so a query costs a few postings lists added up, not a loop over
documents, and a load only reads arrays.
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
class TermWeights:
    """BM25 weight of each term in each document, term-major (CSR: vocabulary x documents).

    A build derives it from the term counts and stores it, so a load only reads it back:
    deriving it (a sort of every posting) took seconds at 100k passages.
    """

    vocab: tuple[str, ...]
    idf: np.ndarray  # float32 per term
    indptr: np.ndarray  # int64, len = terms + 1: postings of term t are [indptr[t], indptr[t+1])
    docs: np.ndarray  # int32 document of each posting, ascending within a term
    weights: np.ndarray  # float32 BM25 weight of each posting
    n_docs: int
    # float32 per term: its highest weight (what BM25.top may skip); None: found when used
    bound: np.ndarray | None = None

    @staticmethod
    def from_counts(counts: TermCounts) -> TermWeights:
        tf = counts.matrix.tocsr()
        n_docs, n_terms = tf.shape
        data = tf.data.astype(np.float32, copy=False)
        per_doc = np.diff(tf.indptr)
        lengths = np.asarray(tf.sum(axis=1), dtype=np.float32).ravel()
        avg = float(lengths.mean()) if n_docs else 0.0
        df = np.bincount(tf.indices, minlength=n_terms).astype(np.float32)
        # The "plus one" idf of Lucene: never negative, so common terms still count a little.
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        # weight = idf * (tf * (K1 + 1) / (tf + norm)), computed in place where it can be (at
        # a million passages each array of postings is 1.2 GB), with the same operations in
        # the same order as before: the same floats.
        norm = np.repeat((K1 * (1 - B + B * lengths / max(avg, 1e-9))).astype(np.float32), per_doc)
        norm += data
        scale = data * np.float32(K1 + 1)
        scale /= norm
        del norm
        weights = idf[tf.indices]
        weights *= scale
        del scale
        # CSC of the document-major matrix is the term-major one.
        by_term = sp.csr_matrix((weights, tf.indices, tf.indptr), shape=tf.shape).tocsc()
        del weights
        by_term.sort_indices()
        bound = np.zeros(n_terms, dtype=np.float32)
        used = np.flatnonzero(np.diff(by_term.indptr))
        if len(used):
            bound[used] = np.maximum.reduceat(by_term.data, by_term.indptr[used])
        return TermWeights(
            vocab=tuple(counts.vocab),
            idf=idf,
            indptr=by_term.indptr.astype(np.int64),
            docs=by_term.indices.astype(np.int32, copy=False),
            weights=by_term.data.astype(np.float32, copy=False),
            n_docs=int(n_docs),
            bound=bound,
        )


class BM25:
    """Scores every document for a query: a few postings lists added into one array."""

    def __init__(self, terms: TermCounts | TermWeights):
        weights = terms if isinstance(terms, TermWeights) else TermWeights.from_counts(terms)
        self.vocab = {term: i for i, term in enumerate(weights.vocab)}
        self.idf = weights.idf
        self._weights = weights
        self.n_docs = weights.n_docs
        # Each term's highest weight: stored by the build; for older indexes found the
        # first time a query uses the term (NaN: not yet).
        self._bound = weights.bound
        if self._bound is None:
            self._bound = np.full(len(weights.vocab), np.nan, dtype=np.float32)

    def term_ids(self, terms: list[str]) -> np.ndarray:
        """Known ids of `terms`, each once."""
        ids = {self.vocab[t] for t in terms if t in self.vocab}
        return np.fromiter(sorted(ids), dtype=np.int64, count=len(ids))

    def scores(self, terms: list[str]) -> np.ndarray:
        """BM25 score of every document for the query terms (0 where none match)."""
        w = self._weights
        out = np.zeros(self.n_docs, dtype=np.float32)
        for t in self.term_ids(terms):
            lo, hi = w.indptr[t], w.indptr[t + 1]
            out[w.docs[lo:hi]] += w.weights[lo:hi]  # a term lists each document once
        return out

    def scores_of(self, terms: list[str], docs: np.ndarray) -> np.ndarray:
        """BM25 scores of the documents `docs` (ascending), equal to `scores(terms)[docs]`:
        the same additions in the same order, looked up in each postings list."""
        w = self._weights
        out = np.zeros(len(docs), dtype=np.float32)
        for t in self.term_ids(terms):
            lo, hi = w.indptr[t], w.indptr[t + 1]
            found, at = _find(w.docs[lo:hi], docs)
            out[found] += w.weights[lo:hi][at]
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
        w = self._weights
        ids = self.term_ids(terms)
        if not len(ids) or k <= 0:
            return np.zeros(0, dtype=np.int64)
        lengths = w.indptr[ids + 1] - w.indptr[ids]
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
            lo, hi = w.indptr[t], w.indptr[t + 1]
            docs = w.docs[lo:hi]
            acc[docs] += w.weights[lo:hi]
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
            lo, hi = w.indptr[ids[j]], w.indptr[ids[j] + 1]
            hit, at = _find(w.docs[lo:hi], rows)
            scores[hit] += w.weights[lo:hi][at]
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
        bound = self._bound[t]
        if np.isnan(bound):
            w = self._weights
            lo, hi = w.indptr[t], w.indptr[t + 1]
            bound = self._bound[t] = w.weights[lo:hi].max() if hi > lo else 0.0
        return float(bound)

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
