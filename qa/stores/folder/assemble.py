"""A build's Plan made into a whole generation: the kept articles' passages, vectors,
keyword counts and character counts copied from the previous one, the new ones added."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import scipy.sparse as sp

from ...index.bm25 import TermCounts
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
        vectors[kept] = previous.vectors[rows]
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
        terms=_terms(plan, source, previous),
        weights=None,
        ann=ann_index(vectors, previous.ann if previous is not None else None, source),
        settings=plan.settings,
        build_seconds=time.perf_counter() - plan.started,
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
        aid = item.article.id
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
    if not len(rows):
        return
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(source_rows) != 1)) + 1
    firsts = np.concatenate(([0], breaks))
    lasts = np.concatenate((breaks, [len(rows)])) - 1
    for a, b in zip(firsts.tolist(), lasts.tolist(), strict=True):
        lo, hi = ptr[rows[a]], ptr[rows[b] + 1]
        source_lo, source_hi = source_ptr[source_rows[a]], source_ptr[source_rows[b] + 1]
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
    for row in np.setdiff1d(np.arange(len(previous)), kept).tolist():
        text = previous.paragraph_at(row)
        df.subtract(set(text[previous.start[row] : previous.end[row]]))
    for passage in new:
        df.update(set(passage.text))
    return {c: n for c, n in df.items() if n > 0}


def _terms(plan: Plan, source: np.ndarray, previous: FolderData | None) -> TermCounts:
    """Keyword counts of each passage: kept rows copied as they are, new ones counted.

    Unused terms are dropped with a count, not a sort: at a million passages (300 million
    counts) `np.unique` over them took minutes.
    """
    if not plan.kept:
        previous = None
    vocab = {t: i for i, t in enumerate(previous.terms.vocab)} if previous else {}
    kept = source >= 0
    lengths = np.zeros(len(source), dtype=np.int64)
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
    indptr = np.zeros(len(source) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    flat = np.empty(indptr[-1], dtype=np.int32)
    data = np.empty(indptr[-1], dtype=np.float32)
    if m is not None:
        rows = np.flatnonzero(kept)
        _copy_rows((flat, data), indptr, (m.indices, m.data), m.indptr, rows, source[rows])
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
    matrix = sp.csr_matrix((data, flat, indptr), shape=(len(source), len(used)))
    return TermCounts(tuple(terms[t] for t in used), matrix)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions starts[i] .. starts[i] + lengths[i] - 1 of every i, one after the other."""
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total, dtype=np.int64)
