"""Okapi BM25 over token ids, stored as plain sparse arrays.

Documents are kept as term counts (doc-major CSR) so an incremental build can reuse the
tokens of unchanged text; the term-major weight matrix is derived from them, so a query
costs one sparse row-slice and a sum, not a loop over documents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

K1 = 1.2
B = 0.75


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


class BM25:
    """Scores every document for a query in one vectorised step."""

    def __init__(self, counts: TermCounts):
        self.vocab = {term: i for i, term in enumerate(counts.vocab)}
        tf = counts.matrix.tocsr()
        n_docs = tf.shape[0]
        data = tf.data.astype(np.float32, copy=False)
        per_doc = np.diff(tf.indptr)
        lengths = np.asarray(tf.sum(axis=1), dtype=np.float32).ravel()
        avg = float(lengths.mean()) if n_docs else 0.0
        df = np.bincount(tf.indices, minlength=tf.shape[1]).astype(np.float32)
        # The "plus one" idf of Lucene: never negative, so common terms still count a little.
        self.idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        # Whole-array steps in float32: at 100k passages this runs at every load.
        norm = np.repeat((K1 * (1 - B + B * lengths / max(avg, 1e-9))).astype(np.float32), per_doc)
        weights = self.idf[tf.indices]
        weights *= data * np.float32(K1 + 1) / (data + norm)
        doc_term = sp.csr_matrix((weights, tf.indices, tf.indptr), shape=tf.shape)
        self._term_doc = doc_term.tocsc()  # its arrays are one row per term: term-major
        self._term_doc = sp.csr_matrix(
            (self._term_doc.data, self._term_doc.indices, self._term_doc.indptr),
            shape=(tf.shape[1], n_docs),
        )
        self.n_docs = n_docs

    def term_ids(self, terms: list[str]) -> np.ndarray:
        """Known ids of `terms`, each once."""
        ids = {self.vocab[t] for t in terms if t in self.vocab}
        return np.fromiter(sorted(ids), dtype=np.int64, count=len(ids))

    def scores(self, terms: list[str]) -> np.ndarray:
        """BM25 score of every document for the query terms (0 where none match)."""
        ids = self.term_ids(terms)
        if ids.size == 0:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self._term_doc[ids].sum(axis=0), dtype=np.float32).ravel()

    def idf_of(self, term: str) -> float:
        """Inverse document frequency of a term; unseen terms count as the rarest."""
        tid = self.vocab.get(term)
        if tid is None:
            return float(np.log1p((self.n_docs + 0.5) / 0.5))
        return float(self.idf[tid])
