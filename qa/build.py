"""`qa build`: read the corpus, split, embed what changed, write a new index generation."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .bm25 import TermCounts
from .config import Settings
from .embed import Embedder, backend_of, make_embedder
from .errors import EmptyCorpusError, IndexNotFoundError, QAError
from .reader import SUPPORTED_SUFFIXES, Corpus, read_corpus
from .retrieve import ann_index
from .split import chunk_paragraph
from .store import (
    VECTOR_DTYPE,
    IndexData,
    StoredArticle,
    article_hash,
    build_lock,
    read_index,
    write_index,
)
from .tokenize import Tokenizer
from .types import Article, BuildStats, Chunk, Span

log = logging.getLogger("qa")

# Progress callback: (what, done, total), e.g. ("embedding", 64, 300).
Progress = Callable[[str, int, int], None]


def _chunk_key(model: str, text: str) -> bytes:
    # Keyed by the embedded text and the model, so vectors are reused only when both match.
    return hashlib.blake2b(f"{model}\x00{text}".encode(), digest_size=16).digest()


# Change it whenever keyword tokens or the splitting into chunks (qa/split.py) change: a
# build reuses the tokens and the chunks of unchanged articles while it stays the same.
TOKENS = "jieba-nohmm-terms+chargrams+title"


def stored_settings(settings: Settings) -> dict:
    """The settings that shape what is stored: a change means re-chunking, not just reuse."""
    return {"chunk_chars": settings.chunk_chars, "tokens": TOKENS}


def build(
    corpus: str | Path,
    index: str | Path = "index",
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> BuildStats:
    """Index the articles under `corpus` into the folder `index`, re-embedding only what changed.

    `index` may also name a Milvus store instead of a folder: see qa/milvus.py.

    Raises EmptyCorpusError when there is no readable article, BuildLockedError when another
    build holds the index. The previous index stays loadable until the new one is complete.
    """
    from .milvus import build_milvus, is_milvus_uri  # not at the top: qa.milvus imports us

    if is_milvus_uri(index):  # the index lives in Milvus (milvus://file.db, milvus+http://)
        return build_milvus(corpus, index, settings, embedder=embedder, progress=progress)
    began = time.perf_counter()
    settings = settings or Settings()
    corpus, index = Path(corpus), Path(index)
    read = read_articles(corpus, progress)
    embedder = embedder or make_embedder(
        settings.build_model, settings.batch_size, settings.backend
    )
    with build_lock(index):
        previous = _previous(index, embedder, settings)
        data, stats = _assemble(read.articles, previous, embedder, settings, progress)
        data = IndexData(**{**data.__dict__, "build_seconds": time.perf_counter() - began})
        write_index(index, data)
    return BuildStats(
        **{**stats, "seconds": time.perf_counter() - began},
        skipped=read.skipped,
        notes=read.notes,
    )


def read_articles(corpus: Path, progress: Progress | None = None) -> Corpus:
    """The corpus's articles; EmptyCorpusError when there is none to index."""
    read = read_corpus(corpus, progress)
    if not read.articles:
        raise EmptyCorpusError(
            f"No readable article in {corpus} (supported: {' '.join(SUPPORTED_SUFFIXES)}); "
            "add some articles and run `qa build` again."
        )
    return read


def _previous(index: Path, embedder: Embedder, settings: Settings) -> IndexData | None:
    """The current index if its vectors can be reused, else None.

    Vectors are keyed by the text they embed, so a change of chunk size still reuses every
    window that came out the same; keyword tokens are reused only if made the same way.
    """
    try:
        data = read_index(index, ann=False, term_counts=True)
    except IndexNotFoundError:
        return None
    except QAError as exc:
        # A damaged or outdated index is simply rebuilt: that is the repair.
        log.warning("Rebuilding from scratch: %s", exc)
        return None
    model, backend = embedder.name, backend_of(embedder)
    if data.model != model:
        log.info("Model changed from %s to %s: re-embedding everything.", data.model, model)
        return None
    if data.backend != backend:
        # Another backend's vectors are close but not equal: never mix the two in one index.
        log.info("Backend changed from %s to %s: re-embedding everything.", data.backend, backend)
        return None
    # Every article is read below (hashes, titles): parse them once, not per chunk.
    return dataclasses.replace(data, articles=tuple(data.articles))


def _assemble(
    articles: tuple[Article, ...],
    previous: IndexData | None,
    embedder: Embedder,
    settings: Settings,
    progress: Progress | None,
) -> tuple[IndexData, dict]:
    old_hashes = {a.article.id: a.hash for a in previous.articles} if previous else {}
    stored = tuple(StoredArticle(a, article_hash(a)) for a in articles)
    new_ids = {a.article.id for a in stored}
    added = sum(a.article.id not in old_hashes for a in stored)
    changed = sum(a.article.id in old_hashes and old_hashes[a.article.id] != a.hash for a in stored)
    removed = sum(i not in new_ids for i in old_hashes)

    chunks: list[Chunk] = []
    owners: list[int] = []
    reused: dict[int, int] = {}  # chunk -> its row in the previous index, same text and spans
    previous_chunks = _ChunkRows(previous, settings)
    for number, item in enumerate(stored):
        rows = previous_chunks.of(item)
        if rows is not None:
            for row in rows:
                reused[len(chunks)] = row
                chunks.append(previous_chunks.chunk(row, item.article))
                owners.append(number)
            continue
        for p, text in enumerate(item.article.paragraphs):
            for chunk in chunk_paragraph(item.article.id, p, text, settings.chunk_chars):
                chunks.append(chunk)
                owners.append(number)
    if not chunks:
        raise EmptyCorpusError("The articles hold no text to index.")

    keys = [_chunk_key(embedder.name, c.text) for c in chunks]
    # Keyword tokens are pure Python on one core; the embedder (onnxruntime, torch) spends
    # its time outside the GIL. Tokenizing while it embeds takes the tokens' time mostly off
    # the build's wall clock: 2.9 s of 1,000 CMRC contexts, here.
    with ThreadPoolExecutor(1, thread_name_prefix="qa-terms") as pool:
        tokens = pool.submit(_terms, chunks, owners, stored, keys, previous)
        vectors, embedded = _vectors(chunks, keys, previous, embedder, settings, progress)
        terms = tokens.result()

    sentence_ptr = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum([len(c.sentences) for c in chunks], out=sentence_ptr[1:])
    data = IndexData(
        model=embedder.name,
        articles=stored,
        chunk_article=np.asarray(owners, dtype=np.int32),
        chunk_paragraph=np.asarray([c.paragraph for c in chunks], dtype=np.int32),
        chunk_start=np.asarray([c.start for c in chunks], dtype=np.int32),
        chunk_end=np.asarray([c.end for c in chunks], dtype=np.int32),
        chunk_hash=np.asarray(keys, dtype="S16"),
        sentence_ptr=sentence_ptr,
        sentence_start=np.asarray([s.start for c in chunks for s in c.sentences], dtype=np.int32),
        sentence_end=np.asarray([s.end for c in chunks for s in c.sentences], dtype=np.int32),
        vectors=vectors,
        ann=ann_index(vectors),
        backend=backend_of(embedder),
        terms=terms,
        char_df=_char_df(chunks, reused, previous),
        settings=stored_settings(settings),
        built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    stats = {
        "added": added,
        "changed": changed,
        "removed": removed,
        "unchanged": len(stored) - added - changed,
        "articles": len(stored),
        "paragraphs": sum(len(a.article.paragraphs) for a in stored),
        "embedded": embedded,
    }
    return data, stats


class _ChunkRows:
    """The chunks of unchanged articles, taken from the previous index instead of re-split.

    Splitting every paragraph again was the slowest part of a rebuild that changed one
    article. Valid while chunking is unchanged: the stored settings (chunk size, TOKENS,
    which changes with any change to splitting) must match.
    """

    def __init__(self, previous: IndexData | None, settings: Settings):
        self.rows: dict[str, tuple[str, int, int]] = {}  # id -> (hash, first row, end row)
        if previous is None or previous.settings != stored_settings(settings):
            return
        bounds = np.searchsorted(previous.chunk_article, np.arange(len(previous.articles) + 1))
        for i, a in enumerate(previous.articles):
            self.rows[a.article.id] = (a.hash, int(bounds[i]), int(bounds[i + 1]))
        self.paragraph = previous.chunk_paragraph.tolist()
        self.start = previous.chunk_start.tolist()
        self.end = previous.chunk_end.tolist()
        self.ptr = previous.sentence_ptr.tolist()
        self.s_start = previous.sentence_start.tolist()
        self.s_end = previous.sentence_end.tolist()

    def of(self, item: StoredArticle) -> range | None:
        """Rows of the article in the previous index if its content is unchanged."""
        found = self.rows.get(item.article.id)
        if found is None or found[0] != item.hash:
            return None
        return range(found[1], found[2])

    def chunk(self, row: int, article: Article) -> Chunk:
        p, start, end = self.paragraph[row], self.start[row], self.end[row]
        lo, hi = self.ptr[row], self.ptr[row + 1]
        spans = tuple(map(Span, self.s_start[lo:hi], self.s_end[lo:hi]))
        return Chunk(article.id, p, start, end, article.paragraphs[p][start:end], spans)


def _char_df(
    chunks: list[Chunk], reused: dict[int, int], previous: IndexData | None
) -> dict[str, int]:
    """In how many chunks each character occurs: the previous counts, updated by what changed."""
    df: Counter[str] = Counter()
    if previous is None or not reused:
        for chunk in chunks:
            df.update(set(chunk.text))
        return dict(df)
    df.update(previous.char_df)
    kept = set(reused.values())
    for row in range(len(previous.chunk_article)):
        if row not in kept:
            article = previous.articles[previous.chunk_article[row]].article
            text = article.paragraphs[previous.chunk_paragraph[row]]
            df.subtract(set(text[previous.chunk_start[row] : previous.chunk_end[row]]))
    for i, chunk in enumerate(chunks):
        if i not in reused:
            df.update(set(chunk.text))
    return {c: n for c, n in df.items() if n > 0}


def _rows_by_key(previous: IndexData | None) -> dict[bytes, int]:
    if previous is None:
        return {}
    # numpy drops trailing NUL bytes of an S16 item: pad back, or one chunk in 256 (its hash
    # ending in 0x00) would be re-embedded by every build.
    return {bytes(h).ljust(16, b"\0"): i for i, h in enumerate(previous.chunk_hash)}


def _vectors(
    chunks: list[Chunk],
    keys: list[bytes],
    previous: IndexData | None,
    embedder: Embedder,
    settings: Settings,
    progress: Progress | None,
) -> tuple[np.ndarray, int]:
    """Vectors for every chunk: reused by content hash, the rest embedded in batches."""
    old_rows = _rows_by_key(previous)
    new_rows: dict[bytes, int] = {}
    texts: list[str] = []
    for chunk, key in zip(chunks, keys, strict=True):
        if key not in old_rows and key not in new_rows:
            new_rows[key] = len(texts)
            texts.append(chunk.text)
    fresh = _embed(texts, embedder, settings, progress)
    dim = fresh.shape[1] if texts else previous.dim
    out = np.empty((len(chunks), dim), dtype=VECTOR_DTYPE)
    for i, key in enumerate(keys):
        out[i] = fresh[new_rows[key]] if key in new_rows else previous.vectors[old_rows[key]]
    return out, len(texts)


def _embed(
    texts: list[str], embedder: Embedder, settings: Settings, progress: Progress | None
) -> np.ndarray:
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    if progress is None:
        return embedder.encode(texts, progress=settings.progress)
    parts = []
    step = settings.batch_size * 4
    for begin in range(0, len(texts), step):
        progress("embedding", begin, len(texts))
        parts.append(embedder.encode(texts[begin : begin + step]))
    progress("embedding", len(texts), len(texts))
    return np.vstack(parts)


def _terms(
    chunks: list[Chunk],
    owners: list[int],
    stored: tuple[StoredArticle, ...],
    keys: list[bytes],
    previous: IndexData | None,
) -> TermCounts:
    """Keyword tokens of each chunk (its text and its article's title).

    Rows of unchanged chunks are copied from the previous index as they are (jieba is the
    slow part of a rebuild); only new text is tokenized.
    """
    if previous is not None and previous.settings.get("tokens") != TOKENS:
        previous = None
    old_rows = _rows_by_key(previous)
    vocab = {t: i for i, t in enumerate(previous.terms.vocab)} if previous else {}
    tokenizer = Tokenizer()
    title_terms: dict[int, list[str]] = {}
    indices: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for chunk, owner, key in zip(chunks, owners, keys, strict=True):
        title = stored[owner].article.title
        row = old_rows.get(key)
        if (
            row is not None
            and previous.articles[previous.chunk_article[row]].article.title == title
        ):
            m = previous.terms.matrix
            lo, hi = m.indptr[row], m.indptr[row + 1]
            indices.append(m.indices[lo:hi])
            counts.append(m.data[lo:hi])
            continue
        if owner not in title_terms:
            title_terms[owner] = tokenizer.index_terms(title)
        # Counted in C; a Counter keeps first occurrences in order, so new terms get their
        # ids in the order of the text, then the title.
        bag = Counter(tokenizer.index_terms(chunk.text))
        bag.update(title_terms[owner])
        ids = np.fromiter(
            [vocab.setdefault(term, len(vocab)) for term in bag], dtype=np.int32, count=len(bag)
        )
        order = np.argsort(ids)
        indices.append(ids[order])
        counts.append(np.fromiter(bag.values(), dtype=np.float32, count=len(bag))[order])
    indptr = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in indices], out=indptr[1:])
    flat = np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32)
    # Drop terms no chunk uses any more (deleted articles), renumbering the rest in order.
    used, remapped = np.unique(flat, return_inverse=True)
    terms = list(vocab)
    matrix = sp.csr_matrix(
        (np.concatenate(counts), remapped.astype(np.int32), indptr), shape=(len(chunks), len(used))
    )
    return TermCounts(tuple(terms[t] for t in used), matrix)
