"""A loaded index folder, searched in memory: exact or 8-bit-scan dense search (FAISS) and
BM25 postings for keywords."""

from __future__ import annotations

import mmap
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
# Above LISTS_FROM passages a full scan of the codes is too slow (~1 ms per 20k passages:
# ~55 ms at a million), so the codes are kept in inverted lists (faiss IVF): the vectors
# are clustered around LISTS(n) centroids and a question scans the PROBES lists nearest to
# it. Measured on the stand-in vectors of benchmarks/scale.py (benchmarks/README.md).
LISTS_FROM = 200_000
PROBES = 64
TRAIN_PER_LIST = 64  # vectors sampled per list to train the centroids (faiss warns below 39)
# A rebuild keeps the last build's centroids and 8-bit ranges while at least this share of
# its passages are kept ones; below it (another corpus, another passage size) it trains
# again, as a first build does, rather than code new vectors with ranges learnt from others.
KEEP_TRAINING_FROM = 0.5


def lists_for(n: int) -> int:
    """How many inverted lists an index of `n` passages gets: about sqrt(n), a power of 2
    (so an index that grows a little keeps its lists, and its training, at a rebuild)."""
    return int(2 ** round(np.log2(max(np.sqrt(n), 1))))


def ann_index(
    vectors: np.ndarray, previous: faiss.Index | None = None, source: np.ndarray | None = None
) -> faiss.Index | None:
    """The approximate-search index a build stores for `vectors`, or None if exact is fast.

    Inner product on unit vectors is cosine similarity. Each dimension is coded in 8 bits
    between its minimum and maximum over the vectors. `previous` (the last build's index)
    and `source` (each row's row in it, or -1 for a new passage) let a large index keep its
    trained centroids and every kept passage's list: a rebuild that adds a few articles
    then costs no clustering, only the new passages' nearest centroids.
    """
    if vectors.shape[0] <= EXACT_UP_TO:
        return None
    import faiss

    if vectors.shape[0] > LISTS_FROM:
        return _lists_index(vectors, previous, source)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexScalarQuantizer(
        vectors.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.train(x)
    index.add(x)
    return index


def _lists_index(vectors: np.ndarray, previous, source: np.ndarray | None):
    import faiss

    n, d = vectors.shape
    lists = lists_for(n)
    if (
        isinstance(previous, faiss.IndexIVFScalarQuantizer)
        and (previous.nlist, previous.d) == (lists, d)
        and source is not None
        and (source >= 0).mean() >= KEEP_TRAINING_FROM
    ):
        return _relisted(vectors, previous, source)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(d), d, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    sample = np.random.default_rng(0).choice(n, min(n, TRAIN_PER_LIST * lists), replace=False)
    index.train(x[np.sort(sample)])
    index.add(x)
    index.nprobe = PROBES
    return index


def _relisted(vectors: np.ndarray, previous, source: np.ndarray):
    """`previous` with its kept passages renumbered, its dropped ones removed and the new
    ones coded and added to their nearest list, each list in row order: what adding every
    vector again gave, without coding a million vectors again (5 s of a rebuild)."""
    import faiss

    index = faiss.clone_index(previous)  # the same centroids, 8-bit ranges and codes
    kept = source >= 0
    row_of = np.full(previous.ntotal, -1, dtype=np.int64)
    row_of[source[kept]] = np.flatnonzero(kept)
    if (row_of < 0).any():
        index.remove_ids(faiss.IDSelectorBatch(np.flatnonzero(row_of < 0)))
    lists = index.invlists
    for number in range(index.nlist):  # each kept passage's id becomes its row
        count = lists.list_size(number)
        if count:
            ids = faiss.rev_swig_ptr(lists.get_ids(number), count)
            ids[:] = row_of[ids]
    fresh = np.flatnonzero(~kept)
    if len(fresh):
        x = np.ascontiguousarray(vectors[fresh], dtype=np.float32)
        assigned = index.quantizer.assign(x, 1).ravel()
        index.add_core(
            len(fresh), faiss.swig_ptr(x), faiss.swig_ptr(fresh), faiss.swig_ptr(assigned)
        )
    for number in range(index.nlist):  # rows ascending in each list, as a fresh add leaves them
        count = lists.list_size(number)
        if count:
            ids = faiss.rev_swig_ptr(lists.get_ids(number), count)
            if (np.diff(ids) < 0).any():
                size = index.code_size
                codes = faiss.rev_swig_ptr(lists.get_codes(number), count * size)
                order = np.argsort(ids, kind="stable")
                codes[:] = codes.reshape(count, size)[order].ravel()
                ids[:] = ids[order]
    return index


def _list_of_rows(index) -> np.ndarray:
    """The inverted list each row of an IVF index is in (what the tests compare)."""
    import faiss

    out = np.full(index.ntotal, -1, dtype=np.int64)
    lists = index.invlists
    for number in range(index.nlist):
        size = lists.list_size(number)
        if size:
            out[faiss.rev_swig_ptr(lists.get_ids(number), size)] = number
    return out


# Above this many mapped bytes, a search hands the pages of the index files it touched back
# to the page cache when it is done (see FolderIndex.release).
RELEASE_ABOVE = 256 << 20


class FolderIndex:
    """A loaded index folder: FAISS for dense search, BM25 postings for keywords."""

    def __init__(self, data: FolderData):
        import faiss

        self.data = data
        self._mapped = _mappings(data)
        self.passages = data.passages
        self.bm25 = BM25(data.postings, data.bound)
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
        if self.data.ann is not None:  # a large index: BM25 of the pool only (bm25.top)
            pool = np.union1d(dense_ids, self.bm25.top(query_terms, want))
            dense = self.data.vectors[pool].astype(np.float32) @ q[0]
            found = Candidates(pool, dense, self.bm25.scores_of(query_terms, pool))
            self.release()
            return found
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
        if self.data.ann is not None:
            found = self.bm25.top(query_terms, k)
            self.release()
            return found
        scores = self.bm25.scores(query_terms)
        rows = np.flatnonzero(scores > 0)
        return rows[np.argsort(-scores[rows], kind="stable")[:k]]

    def release(self) -> None:
        """Hand the pages of the mapped index files back to the page cache.

        A question reads a few kilobytes of each of a few thousand places in the postings
        and vectors, and the kernel maps ~64 KB around each: at a million passages 200
        questions left 2-4 GB of the files mapped into the process (its RSS), though none
        of it is the process's own memory. Dropping them from the process (MADV_DONTNEED:
        the mapping stays, and the file's pages stay cached, so the next question finds
        them without reading the disk) costs about a millisecond per 20 MB mapped. Only for
        indexes of more than EXACT_UP_TO passages mapping more than RELEASE_ABOVE (their
        searches call it); the inverted lists faiss maps itself (vectors.faiss, ~0.5 GB at a
        million passages) are not released.
        """
        for mapping in self._mapped:
            mapping.madvise(mmap.MADV_DONTNEED)

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


def _mappings(data: FolderData) -> list[mmap.mmap]:
    """The memory maps of the index's files (its arrays are views of them), if together
    they map more than RELEASE_ABOVE bytes and this system can release pages; else none."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return []
    p = data.postings
    arrays = [data.vectors, data.keys, *data.arrays().values(), p.docs, p.tf, p.indptr]
    found: dict[int, mmap.mmap] = {}
    for array in arrays:
        while array is not None and not isinstance(array, mmap.mmap):
            if isinstance(array, np.memmap):
                array = getattr(array, "_mmap", None)
                break
            array = getattr(array, "base", None)
        if isinstance(array, mmap.mmap):
            found[id(array)] = array
    blob = getattr(data.passages.articles, "_blob", None)
    if isinstance(blob, mmap.mmap):
        found[id(blob)] = blob
    if sum(len(m) for m in found.values()) <= RELEASE_ABOVE:
        return []
    return list(found.values())
