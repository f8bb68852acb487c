"""`qa build`, the only pipeline: read the corpus, diff it against what the store holds,
split what changed, reuse stored vectors and embed the rest, tokenize, hand the store a Plan.

    store.manifest + corpus -> read_articles (files unchanged since the last build are not
    read again) -> diff -> split -> vectors (store.vectors, embed the rest) + keyword
    tokens -> store.write(plan) -> BuildStats

It all runs under the store's build lock: a second build waits for none of it, it is told
at once that the index is being built (BuildLockedError).

Nothing here depends on where the index lives (qa/stores/).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .config import Settings
from .errors import EmptyCorpusError
from .index.embed import Embedder, backend_of, make_embedder
from .index.split import split_passages
from .index.tokenize import Tokenizer
from .read import SUPPORTED_SUFFIXES, Corpus, read_corpus
from .read.corpus import reading_version
from .stores import Store, open_store
from .types import (
    Article,
    BuildStats,
    IndexedPassage,
    KeptArticle,
    Manifest,
    Plan,
    StoredArticle,
    StoredSettings,
)

log = logging.getLogger("qa")

# Progress callback: (what, done, total), e.g. ("embedding", 64, 300).
Progress = Callable[[str, int, int], None]

# Change it whenever keyword tokens or the splitting into passages (qa/index/split.py) change: a
# build keeps the stored passages and tokens of unchanged articles while it stays the same.
TOKENS = "jieba-nohmm-terms+chargrams+title"


def passage_key(model: str, text: str) -> bytes:
    """Content key of an embedded text: vectors are reused only when text and model match."""
    return hashlib.blake2b(f"{model}\x00{text}".encode(), digest_size=16).digest()


def article_hash(article: Article) -> str:
    """Content hash of everything about an article that ends up in the index."""
    payload = json.dumps(
        [article.title, article.source, article.metadata, article.paragraphs], ensure_ascii=False
    )
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def stored_settings(settings: Settings) -> StoredSettings:
    """The settings that shape what is stored: a change means re-splitting, not just reuse."""
    return StoredSettings(settings.passage_chars, TOKENS)


def build(
    corpus: str | Path,
    index: str | Path = "index",
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> BuildStats:
    """Index the articles under `corpus` into `index`, re-embedding only what changed.

    `index` is a folder, or a Milvus address (milvus://file.db, milvus+http://host: see
    qa/stores/milvus/). Raises EmptyCorpusError when there is no readable article,
    BuildLockedError when another build holds the index folder. A build that fails leaves
    the previous index answering (in Milvus, except a build that changes the model or
    backend: that one starts the collections over).
    """
    began = time.perf_counter()
    settings = settings or Settings()
    store = open_store(index)
    with store.lock():
        stored = store.manifest()
        root = Path(corpus)
        read = read_articles(root, progress, _remembered(stored, root, settings))
        embedder = embedder or make_embedder(
            settings.build_model, settings.batch_size, settings.backend
        )
        old = _previous(stored, embedder)
        if read.unchanged and (old is None or not read.unchanged.keys() <= old.hashes.keys()):
            # The stored passages cannot be kept (another model or backend), or an unchanged
            # file's article is not in the index: read every file.
            read = read_articles(root, progress)
        plan, stats = _plan(read, old, store, embedder, settings, progress, began)
        store.write(dataclasses.replace(plan, read=_to_remember(read, root)))
    return BuildStats(
        **stats, seconds=time.perf_counter() - began, skipped=read.skipped, notes=read.notes
    )


def read_articles(
    corpus: Path, progress: Progress | None = None, known: dict[str, dict] | None = None
) -> Corpus:
    """The corpus's articles; EmptyCorpusError when there is none to index. `known`: what
    the index remembers of the files it read (read_corpus)."""
    read = read_corpus(corpus, progress, known)
    if not read.articles and not read.unchanged:
        raise EmptyCorpusError(
            f"No readable article in {corpus} (supported: {' '.join(SUPPORTED_SUFFIXES)}); "
            "add some articles and run `qa build` again."
        )
    return read


def _remembered(old: Manifest | None, corpus: Path, settings: Settings) -> dict | None:
    """What the index remembers of the files of `corpus`, if it can be trusted: read from
    the same folder by the same reading code, and split the way this build splits."""
    if old is None or not old.read or old.settings != stored_settings(settings):
        return None
    read = old.read
    if read.get("root") != str(corpus.resolve()) or read.get("version") != reading_version():
        return None
    files = read.get("files")
    return files if isinstance(files, dict) else None


def _to_remember(read: Corpus, corpus: Path) -> dict:
    return {"root": str(corpus.resolve()), "version": reading_version(), "files": read.files}


def _previous(old: Manifest | None, embedder: Embedder) -> Manifest | None:
    """What the store holds, if its vectors can be reused, else None."""
    if old is None:
        return None
    model, backend = embedder.name, backend_of(embedder)
    if old.model != model:
        log.info("Model changed from %s to %s: re-embedding everything.", old.model, model)
        return None
    if old.backend != backend:
        # Another backend's vectors are close but not equal: never mix the two in one index.
        log.info("Backend changed from %s to %s: re-embedding everything.", old.backend, backend)
        return None
    return old


def _plan(
    read: Corpus,
    old: Manifest | None,
    store: Store,
    embedder: Embedder,
    settings: Settings,
    progress: Progress | None,
    began: float,
) -> tuple[Plan, dict]:
    shape = stored_settings(settings)
    old_hashes = old.hashes if old is not None else {}
    # Articles of unchanged files (not read again: read_corpus) keep what the store holds.
    unchanged = [KeptArticle(i, old_hashes[i], n) for i, n in read.unchanged.items()]
    stored: tuple[StoredArticle | KeptArticle, ...] = tuple(
        sorted(
            [*(StoredArticle(a, article_hash(a)) for a in read.articles), *unchanged],
            key=lambda a: a.id,
        )
    )
    new_ids = {a.id for a in stored}
    added = sum(a.id not in old_hashes for a in stored)
    changed = sum(a.id in old_hashes and old_hashes[a.id] != a.hash for a in stored)
    removed = sum(i not in new_ids for i in old_hashes)
    # An unchanged article keeps its stored passages while they were split the same way.
    same_shape = old is not None and old.settings == shape
    kept = frozenset(a.id for a in stored if same_shape and old_hashes.get(a.id) == a.hash)
    passages = [
        passage
        for item in stored
        if item.id not in kept
        for p, text in enumerate(item.article.paragraphs)
        for passage in split_passages(item.article.id, p, text, settings.passage_chars)
    ]
    if not passages and not kept:
        raise EmptyCorpusError("The articles hold no text to index.")
    keys = [passage_key(embedder.name, p.text) for p in passages]
    # Keyword tokens are pure Python on one core; the embedder (onnxruntime, torch) spends
    # its time outside the GIL. Tokenizing while it embeds takes the tokens' time mostly off
    # the build's wall clock: 2.9 s of 1,000 CMRC contexts, here.
    with ThreadPoolExecutor(1, thread_name_prefix="qa-terms") as pool:
        titles = {a.id: a.article.title for a in stored if a.id not in kept}
        tokens = pool.submit(_terms, passages, titles)
        reuse = store if old is not None else None
        vectors, embedded = _vectors(passages, keys, reuse, embedder, settings, progress)
        terms = tokens.result()
    plan = Plan(
        model=embedder.name,
        backend=backend_of(embedder),
        dim=int(vectors.shape[1]) if passages else old.dim,
        settings=shape,
        articles=stored,
        kept=kept,
        passages=tuple(passages),
        keys=tuple(keys),
        vectors=vectors,
        terms=terms,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        started=began,
    )
    stats = {
        "added": added,
        "changed": changed,
        "removed": removed,
        "unchanged": len(stored) - added - changed,
        "articles": len(stored),
        "paragraphs": sum(a.paragraph_count for a in stored),
        "embedded": embedded,
    }
    return plan, stats


def _vectors(
    passages: list[IndexedPassage],
    keys: list[bytes],
    store: Store | None,
    embedder: Embedder,
    settings: Settings,
    progress: Progress | None,
) -> tuple[np.ndarray, int]:
    """Vectors of the passages: the store's by content key, the rest embedded in batches."""
    known = store.vectors(keys) if store is not None and keys else {}
    text_of = dict(zip(keys, (p.text for p in passages), strict=True))
    missing = [k for k in dict.fromkeys(keys) if k not in known]
    fresh = _embed([text_of[k] for k in missing], embedder, settings, progress)
    if not keys:
        return np.zeros((0, 0), dtype=np.float32), 0
    if len(missing) == len(keys):  # all new and distinct, in order: no second copy (GBs at 1M)
        return np.asarray(fresh, dtype=np.float32), len(missing)
    known.update(zip(missing, fresh, strict=True))
    return np.stack([np.asarray(known[k], dtype=np.float32) for k in keys]), len(missing)


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


def _terms(passages: list[IndexedPassage], titles: dict[str, str]) -> tuple[tuple[str, ...], ...]:
    """Keyword tokens of each passage: its text's, then its article title's."""
    tokenizer = Tokenizer()
    title_terms: dict[str, list[str]] = {}
    # Every token is a new string (a slice, a gram): ~70 bytes each, a thousand per passage,
    # tens of gigabytes at a million passages. Each distinct token is kept once instead.
    shared: dict[str, str] = {}
    out = []
    for passage in passages:
        owner = passage.article_id
        if owner not in title_terms:
            title_terms[owner] = tokenizer.index_terms(titles[owner])
        tokens = tokenizer.index_terms(passage.text) + title_terms[owner]
        out.append(tuple(map(shared.setdefault, tokens, tokens)))
    return tuple(out)
