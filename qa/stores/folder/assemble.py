"""A build's Plan made into a whole generation: the kept articles' passages, vectors,
keyword counts and character counts copied from the previous one, the new ones added."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import scipy.sparse as sp

from ...index.bm25 import Postings, TermCounts
from ...types import IndexedPassage, Plan
from ..data import VECTOR_DTYPE, Passages
from .disk import FolderData
from .search import ann_index


def assemble(plan: Plan, previous: FolderData | None) -> FolderData:
    """The whole index of `plan`: kept articles' rows copied from `previous`, then the new.

    Kept rows are copied as arrays, a block of consecutive rows at a time, never made into
    passage objects again: at a million passages that took most of a rebuild.
    """
    kept_article, first, count = _spans(plan, previous.passages if plan.kept else None)
    source = _ranges(first, count)  # row in `previous`, or -1 - number of a new passage
    new_rows = np.repeat(~kept_article, count)
    source[new_rows] = -1 - source[new_rows]
    kept = source >= 0
    fresh = np.flatnonzero(~kept)
    new = [plan.passages[-1 - s] for s in source[fresh]]
    n = len(source)
    old = previous.passages if kept.any() else None
    vectors = np.empty((n, plan.dim), dtype=VECTOR_DTYPE)
    keys = np.empty(n, dtype="S16")
    paragraph, start, end = (np.empty(n, dtype=np.int32) for _ in range(3))
    lengths = np.empty(n, dtype=np.int64)
    if old is not None:
        rows = source[kept]
        # Runs of consecutive rows are copied as slices: indexing a mapped gigabyte of
        # vectors with a million row numbers took 6 s of a rebuild at a million passages.
        for at, row, run in _runs(np.flatnonzero(kept), rows):
            vectors[at : at + run] = previous.vectors[row : row + run]
        keys[kept] = previous.keys[rows]
        paragraph[kept], start[kept], end[kept] = (
            old.paragraph[rows],
            old.start[rows],
            old.end[rows],
        )
        lengths[kept] = np.diff(old.sentence_ptr)[rows]
    if len(fresh):
        vectors[fresh] = np.asarray(plan.vectors)[-1 - source[fresh]]
        keys[fresh] = np.asarray([plan.keys[-1 - s] for s in source[fresh]], dtype="S16")
        paragraph[fresh] = [p.paragraph for p in new]
        start[fresh] = [p.start for p in new]
        end[fresh] = [p.end for p in new]
        lengths[fresh] = [len(p.sentences) for p in new]
    sentence_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=sentence_ptr[1:])
    sentence_start = np.empty(sentence_ptr[-1], dtype=np.int32)
    sentence_end = np.empty(sentence_ptr[-1], dtype=np.int32)
    if old is not None:
        _copy_rows(
            (sentence_start, sentence_end),
            sentence_ptr,
            (old.sentence_start, old.sentence_end),
            old.sentence_ptr,
            np.flatnonzero(kept),
            source[kept],
        )
    for row, passage in zip(fresh, new, strict=True):
        lo, hi = sentence_ptr[row], sentence_ptr[row + 1]
        sentence_start[lo:hi] = [span.start for span in passage.sentences]
        sentence_end[lo:hi] = [span.end for span in passage.sentences]
    placed = Passages(
        model=plan.model,
        backend=plan.backend,
        dim=plan.dim,
        articles=plan.articles,
        article=np.repeat(np.arange(len(count), dtype=np.int32), count),
        paragraph=paragraph,
        start=start,
        end=end,
        sentence_ptr=sentence_ptr,
        sentence_start=sentence_start,
        sentence_end=sentence_end,
        char_df=_char_df(new, source[kept], previous.passages if previous else None),
        built_at=plan.built_at,
    )
    return FolderData(
        passages=placed,
        keys=keys,
        vectors=vectors,
        postings=_postings(plan, source, previous),
        bound=None,
        ann=ann_index(vectors, previous.ann if previous is not None else None, source),
        settings=plan.settings,
        build_seconds=time.perf_counter() - plan.started,
        read=plan.read,
    )


def _spans(plan: Plan, previous: Passages | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per article of the plan, in order: whether it is kept, its first row in `previous`
    (kept) or first new passage (otherwise), and how many passages it has."""
    rows: dict[str, tuple[int, int]] = {}
    if previous is not None:
        articles = previous.articles
        ids = articles.ids() if hasattr(articles, "ids") else [a.article.id for a in articles]
        bounds = np.searchsorted(previous.article, np.arange(len(ids) + 1)).tolist()
        for i, aid in enumerate(ids):
            rows[aid] = bounds[i], bounds[i + 1]
    new: dict[str, tuple[int, int]] = {}
    for j, passage in enumerate(plan.passages):
        first, count = new.get(passage.article_id, (j, 0))
        if first + count != j:  # the build splits one article after another
            raise ValueError(f"the new passages of {passage.article_id} are not together")
        new[passage.article_id] = first, count + 1
    n = len(plan.articles)
    kept = np.zeros(n, dtype=bool)
    first = np.zeros(n, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    for number, item in enumerate(plan.articles):
        aid = item.id
        if aid in plan.kept:
            lo, hi = rows[aid]
            kept[number], first[number], count[number] = True, lo, hi - lo
        else:
            first[number], count[number] = new.get(aid, (0, 0))
    return kept, first, count


def _copy_rows(
    targets: tuple[np.ndarray, ...],
    ptr: np.ndarray,
    sources: tuple[np.ndarray, ...],
    source_ptr: np.ndarray,
    rows: np.ndarray,
    source_rows: np.ndarray,
) -> None:
    """For each row `rows[i]`, its items (`ptr[row]` to `ptr[row + 1]` of each target) are
    those of `source_rows[i]` in the sources; consecutive rows are copied in one block."""
    for row, source_row, count in _runs(rows, source_rows):
        lo, hi = ptr[row], ptr[row + count]
        source_lo, source_hi = source_ptr[source_row], source_ptr[source_row + count]
        for target, items in zip(targets, sources, strict=True):
            target[lo:hi] = items[source_lo:source_hi]


def _char_df(
    new: list[IndexedPassage], kept: np.ndarray, previous: Passages | None
) -> dict[str, int]:
    """In how many passages each character occurs: the previous counts, updated by what changed.

    `new` are the new passages in row order, `kept` the previous rows kept."""
    df: Counter[str] = Counter()
    if previous is None or not len(kept):
        for passage in new:
            df.update(set(passage.text))
        return dict(df)
    df.update(previous.char_df)
    dropped = np.ones(len(previous), dtype=bool)
    dropped[kept] = False
    for row in np.flatnonzero(dropped).tolist():
        text = previous.paragraph_at(row)
        df.subtract(set(text[previous.start[row] : previous.end[row]]))
    for passage in new:
        df.update(set(passage.text))
    return {c: n for c, n in df.items() if n > 0}


def _postings(plan: Plan, source: np.ndarray, previous: FolderData | None) -> Postings:
    """Keyword postings of the whole index: the previous ones renumbered (kept passages keep
    their counts; dropped ones leave), the new passages' counted and inserted.

    Nothing is counted or sorted again for a kept passage: at a million passages (350
    million postings) deriving the term-major lists from per-passage counts took a third of
    a rebuild.
    """
    old = previous.postings if previous is not None and plan.kept else None
    if old is None:
        old = Postings((), np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0), np.zeros(0))
    vocab = {t: i for i, t in enumerate(old.vocab)}
    kept = source >= 0
    fresh = np.flatnonzero(~kept)
    ids_of, counts_of = [], []
    for row in fresh:
        # Counted in C; a Counter keeps first occurrences in order, so new terms get their
        # ids in the order of the text, then the title.
        bag = Counter(plan.terms[-1 - source[row]])
        ids_of.append(
            np.fromiter([vocab.setdefault(t, len(vocab)) for t in bag], np.int32, len(bag))
        )
        counts_of.append(np.fromiter(bag.values(), dtype=np.float32, count=len(bag)))
    indptr = np.zeros(len(fresh) + 1, dtype=np.int64)
    np.cumsum([len(ids) for ids in ids_of], out=indptr[1:])
    matrix = sp.csr_matrix(
        (
            np.concatenate(counts_of) if counts_of else np.zeros(0, np.float32),
            np.concatenate(ids_of) if ids_of else np.zeros(0, np.int32),
            indptr,
        ),
        shape=(len(fresh), len(vocab)),
    )
    row_of = np.full(old.n_docs, -1, dtype=np.int32)
    row_of[source[kept]] = np.flatnonzero(kept)
    return old.merged(row_of, len(source), fresh, TermCounts(tuple(vocab), matrix))


def _runs(rows: np.ndarray, source_rows: np.ndarray) -> list[tuple[int, int, int]]:
    """(row, source row, count) of each run where both go up by one together."""
    if not len(rows):
        return []
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(source_rows) != 1)) + 1
    firsts = np.concatenate(([0], breaks))
    counts = np.diff(np.concatenate((firsts, [len(rows)])))
    return list(
        zip(rows[firsts].tolist(), source_rows[firsts].tolist(), counts.tolist(), strict=True)
    )


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions starts[i] .. starts[i] + lengths[i] - 1 of every i, one after the other."""
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total, dtype=np.int64)
