"""A build's Plan made into a whole generation: the kept articles' passages, vectors,
keyword counts and character counts copied from the previous one, the new ones added."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import scipy.sparse as sp

from ...index.bm25 import TermCounts
from ...types import Article, IndexedPassage, Plan, Span
from ..data import VECTOR_DTYPE, Passages
from .disk import FolderData
from .search import ann_index


def assemble(plan: Plan, previous: FolderData | None) -> FolderData:
    """The whole index of `plan`: kept articles' rows copied from `previous`, then the new."""
    old = _PassageRows(previous.passages) if plan.kept else None
    new_of: dict[str, list[int]] = {}
    for j, passage in enumerate(plan.passages):
        new_of.setdefault(passage.article_id, []).append(j)
    passages: list[IndexedPassage] = []
    owners: list[int] = []
    sources: list[int] = []  # row in `previous` (>= 0) or -1 - number of a new passage
    for number, item in enumerate(plan.articles):
        if item.article.id in plan.kept:
            for row in old.of(item.article.id):
                passages.append(old.passage(row, item.article))
                owners.append(number)
                sources.append(row)
        else:
            for j in new_of.get(item.article.id, ()):
                passages.append(plan.passages[j])
                owners.append(number)
                sources.append(-1 - j)
    source = np.asarray(sources, dtype=np.int64)
    reused = source >= 0
    vectors = np.empty((len(passages), plan.dim), dtype=VECTOR_DTYPE)
    if reused.any():
        vectors[reused] = previous.vectors[source[reused]]
    if (~reused).any():
        vectors[~reused] = np.asarray(plan.vectors)[-1 - source[~reused]]
    keys = [previous.keys[s] if s >= 0 else plan.keys[-1 - s] for s in sources]
    sentence_ptr = np.zeros(len(passages) + 1, dtype=np.int64)
    np.cumsum([len(p.sentences) for p in passages], out=sentence_ptr[1:])
    placed = Passages(
        model=plan.model,
        backend=plan.backend,
        dim=plan.dim,
        articles=plan.articles,
        article=np.asarray(owners, dtype=np.int32),
        paragraph=np.asarray([p.paragraph for p in passages], dtype=np.int32),
        start=np.asarray([p.start for p in passages], dtype=np.int32),
        end=np.asarray([p.end for p in passages], dtype=np.int32),
        sentence_ptr=sentence_ptr,
        sentence_start=np.asarray([s.start for p in passages for s in p.sentences], dtype=np.int32),
        sentence_end=np.asarray([s.end for p in passages for s in p.sentences], dtype=np.int32),
        char_df=_char_df(passages, sources, previous.passages if previous else None),
        built_at=plan.built_at,
    )
    return FolderData(
        passages=placed,
        keys=np.asarray(keys, dtype="S16"),
        vectors=vectors,
        terms=_terms(plan, sources, previous),
        weights=None,
        ann=ann_index(vectors, previous.ann if previous is not None else None, source),
        settings=plan.settings,
        build_seconds=time.perf_counter() - plan.started,
    )


class _PassageRows:
    """The passages of kept articles, taken from the previous index instead of re-split.

    Splitting every paragraph again was the slowest part of a rebuild that changed one
    article.
    """

    def __init__(self, previous: Passages):
        self.rows: dict[str, range] = {}
        bounds = np.searchsorted(previous.article, np.arange(len(previous.articles) + 1))
        for i, a in enumerate(previous.articles):
            self.rows[a.article.id] = range(int(bounds[i]), int(bounds[i + 1]))
        self.paragraph = previous.paragraph.tolist()
        self.start = previous.start.tolist()
        self.end = previous.end.tolist()
        self.ptr = previous.sentence_ptr.tolist()
        self.s_start = previous.sentence_start.tolist()
        self.s_end = previous.sentence_end.tolist()

    def of(self, article_id: str) -> range:
        return self.rows[article_id]

    def passage(self, row: int, article: Article) -> IndexedPassage:
        p, start, end = self.paragraph[row], self.start[row], self.end[row]
        lo, hi = self.ptr[row], self.ptr[row + 1]
        spans = tuple(map(Span, self.s_start[lo:hi], self.s_end[lo:hi]))
        return IndexedPassage(article.id, p, start, end, article.paragraphs[p][start:end], spans)


def _char_df(
    passages: list[IndexedPassage], sources: list[int], previous: Passages | None
) -> dict[str, int]:
    """In how many passages each character occurs: the previous counts, updated by what changed."""
    df: Counter[str] = Counter()
    kept = {s for s in sources if s >= 0}
    if previous is None or not kept:
        for passage in passages:
            df.update(set(passage.text))
        return dict(df)
    df.update(previous.char_df)
    for row in range(len(previous)):
        if row not in kept:
            text = previous.paragraph_at(row)
            df.subtract(set(text[previous.start[row] : previous.end[row]]))
    for passage, s in zip(passages, sources, strict=True):
        if s < 0:
            df.update(set(passage.text))
    return {c: n for c, n in df.items() if n > 0}


def _terms(plan: Plan, sources: list[int], previous: FolderData | None) -> TermCounts:
    """Keyword counts of each passage: kept rows copied as they are, new ones counted.

    Kept rows are copied in blocks and unused terms dropped with a count, not a sort: at a
    million passages (300 million counts) a loop over rows and `np.unique` took minutes.
    """
    if not plan.kept:
        previous = None
    vocab = {t: i for i, t in enumerate(previous.terms.vocab)} if previous else {}
    source = np.asarray(sources, dtype=np.int64)
    kept = source >= 0
    lengths = np.zeros(len(sources), dtype=np.int64)
    m = previous.terms.matrix if previous else None
    if m is not None:
        lengths[kept] = np.diff(m.indptr)[source[kept]]
    fresh = np.flatnonzero(~kept)
    counted: list[tuple[np.ndarray, np.ndarray]] = []
    for row in fresh:
        # Counted in C; a Counter keeps first occurrences in order, so new terms get their
        # ids in the order of the text, then the title.
        bag = Counter(plan.terms[-1 - source[row]])
        ids = np.fromiter(
            [vocab.setdefault(term, len(vocab)) for term in bag], dtype=np.int32, count=len(bag)
        )
        order = np.argsort(ids)
        counted.append(
            (ids[order], np.fromiter(bag.values(), dtype=np.float32, count=len(bag))[order])
        )
        lengths[row] = len(bag)
    indptr = np.zeros(len(sources) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    flat = np.empty(indptr[-1], dtype=np.int32)
    data = np.empty(indptr[-1], dtype=np.float32)
    rows = np.flatnonzero(kept)
    for lo in range(0, len(rows), COPY_ROWS):
        block = rows[lo : lo + COPY_ROWS]
        there = _ranges(m.indptr[source[block]], lengths[block])
        here = _ranges(indptr[block], lengths[block])
        flat[here] = m.indices[there]
        data[here] = m.data[there]
    for row, (ids, values) in zip(fresh, counted, strict=True):
        flat[indptr[row] : indptr[row + 1]] = ids
        data[indptr[row] : indptr[row + 1]] = values
    # Drop terms no passage uses any more (deleted articles), renumbering the rest in order.
    used = np.flatnonzero(np.bincount(flat, minlength=len(vocab)))
    if len(used) < len(vocab):
        renumber = np.zeros(len(vocab), dtype=np.int32)
        renumber[used] = np.arange(len(used), dtype=np.int32)
        flat = renumber[flat]
    terms = list(vocab)
    matrix = sp.csr_matrix((data, flat, indptr), shape=(len(sources), len(used)))
    return TermCounts(tuple(terms[t] for t in used), matrix)


COPY_ROWS = 65_536  # kept rows copied at a time (bounds the index arrays of one copy)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions starts[i] .. starts[i] + lengths[i] - 1 of every i, one after the other."""
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total, dtype=np.int64)
