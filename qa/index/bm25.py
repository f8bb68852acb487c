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
        norm = np.repeat((K1 * (1 - B + B * lengths / max(avg, 1e-9))).astype(np.float32), per_doc)
        weights = idf[tf.indices]
        weights *= data * np.float32(K1 + 1) / (data + norm)
        # CSC of the document-major matrix is the term-major one.
        by_term = sp.csr_matrix((weights, tf.indices, tf.indptr), shape=tf.shape).tocsc()
        by_term.sort_indices()
        return TermWeights(
            vocab=tuple(counts.vocab),
            idf=idf,
            indptr=by_term.indptr.astype(np.int64),
            docs=by_term.indices.astype(np.int32),
            weights=by_term.data.astype(np.float32),
            n_docs=int(n_docs),
        )


class BM25:
    """Scores every document for a query: a few postings lists added into one array."""

    def __init__(self, terms: TermCounts | TermWeights):
        weights = terms if isinstance(terms, TermWeights) else TermWeights.from_counts(terms)
        self.vocab = {term: i for i, term in enumerate(weights.vocab)}
        self.idf = weights.idf
        self._weights = weights
        self.n_docs = weights.n_docs

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

    def idf_of(self, term: str) -> float:
        """Inverse document frequency of a term; unseen terms count as the rarest."""
        tid = self.vocab.get(term)
        if tid is None:
            return float(np.log1p((self.n_docs + 0.5) / 0.5))
        return float(self.idf[tid])
