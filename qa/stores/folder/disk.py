"""The index folder on disk: what a generation holds, written atomically, and the build lock.

    index/
      manifest.json        the commit point: format, model, counts, and which data folder is live
      data-<stamp>/        one generation: articles.jsonl, passage and sentence .npy arrays,
                           vectors, keyword postings (term counts, term-major) (index/README.md)
      .lock                held while a build writes

A build writes a whole new data folder, then replaces manifest.json in one rename, so a
build that dies halfway leaves the previous index loadable. load.py reads it back.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...errors import BuildLockedError, IndexWriteError, QAError
from ...index.bm25 import Postings
from ...types import KeptArticle, StoredSettings
from ..data import VECTOR_DTYPE, Passages

if TYPE_CHECKING:
    import faiss

MANIFEST = "manifest.json"
# The layout a build writes: 2 keeps the keyword counts term-major (bm25_tf.npy) and stores
# no weights; 1 (per-passage counts, terms_*.npy, and stored weights) is still read. A
# release that reads only 1 says so of a 2, rather than calling it damaged.
FOLDER_FORMAT = 2
READS_FORMATS = (1, 2)
ANN_FILE = "vectors.faiss"  # approximate-search index, written only for large indexes
ARTICLE_ENDS = "article_ends.npy"  # offset of each line end of articles.jsonl
ARTICLE_HASHES = "article_hashes.json"  # each article's content hash, in row order
READ_FILE = "read.json"  # what the build read of each corpus file (qa/read/corpus.py)
# The .npy arrays of a generation, as FolderData.arrays() names them.
ARRAYS = (
    "passage_article",
    "passage_paragraph",
    "passage_start",
    "passage_end",
    "passage_hash",
    "sentence_ptr",
    "sentence_start",
    "sentence_end",
    "vectors",
)

# Damage checks at load. Files up to FULL_CHECKSUM_UP_TO bytes are hashed whole. Bigger ones
# (vectors, their 8-bit codes, keyword arrays and article text of a large index: ~500 MB at
# 100k passages, 1.5 s to hash at every load) get one BLAKE2b digest per BLOCK_BYTES block in
# the manifest, and a load hashes only SAMPLED_BLOCKS of them, evenly spread, plus the exact
# size. That still catches truncation, a file swapped in from another build or model, a zeroed or
# rewritten file; it can miss a few bytes edited in place between sampled blocks of a big
# array. Article text, what answers quote, is never read unchecked: the block holding an
# article is hashed before that article is first parsed (articles.jsonl is parsed lazily).
FULL_CHECKSUM_UP_TO = 8 << 20
BLOCK_BYTES = 1 << 18
SAMPLED_BLOCKS = 16


@dataclass(frozen=True)
class FolderData:
    """One generation of an index folder: the passages answering reads, and what only this
    store keeps beside them (vectors, content keys, keyword counts, the 8-bit codes)."""

    passages: Passages
    keys: np.ndarray  # S16 per passage: content key of its embedded text, to reuse vectors
    vectors: np.ndarray  # VECTOR_DTYPE (passages, dim), unit length
    postings: Postings  # keyword counts, term-major: what queries weigh and a build extends
    bound: np.ndarray | None  # each term's highest BM25 weight, as stored; None: derive
    ann: faiss.Index | None  # 8-bit codes of `vectors` (large indexes), else None: exact
    settings: StoredSettings
    build_seconds: float = 0.0
    read: dict | None = None  # what the build read (Manifest.read), kept in READ_FILE

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.postings.vocab

    def keyword_bound(self) -> np.ndarray:
        """Each term's highest BM25 weight: as stored, or derived from the term counts."""
        return self.bound if self.bound is not None else self.postings.bounds()

    def counts(self) -> dict[str, int]:
        """As the manifest records them."""
        return {**self.passages.counts(), "terms": len(self.vocab)}

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-passage and per-sentence arrays, by their file's name (ARRAYS)."""
        p = self.passages
        return {
            "passage_article": p.article,
            "passage_paragraph": p.paragraph,
            "passage_start": p.start,
            "passage_end": p.end,
            "passage_hash": self.keys,
            "sentence_ptr": p.sentence_ptr,
            "sentence_start": p.sentence_start,
            "sentence_end": p.sentence_end,
            "vectors": self.vectors.astype(VECTOR_DTYPE, copy=False),
        }


def _fsync_write(path: Path, payload: bytes) -> None:
    with open(path, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def _write(path: Path, payload: bytes) -> None:
    """Written, not yet synced: `_sync_files` syncs a generation's files before it is used."""
    with open(path, "wb") as f:
        f.write(payload)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _sync_files(folder: Path) -> None:
    """Sync every file of `folder` to disk, then the folder itself. Syncing each file as it
    was written made the build wait for the disk after each one (gigabytes at a million
    passages); now the disk writes the first files while the build makes the next."""
    for path in sorted(folder.iterdir()):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checksum(path: Path) -> str:
    """BLAKE2b digest of the whole file."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def sampled_blocks(n: int) -> list[int]:
    """The SAMPLED_BLOCKS blocks of n that a load hashes: spread out, first and last included."""
    return sorted({round(k * (n - 1) / max(SAMPLED_BLOCKS - 1, 1)) for k in range(SAMPLED_BLOCKS)})


def _block_digests(path: Path, every: bool) -> list[str | None]:
    """Digest of each BLOCK_BYTES block of the file: of `every` one (articles.jsonl, checked
    block by block as articles are read), else of those a load samples, None for the rest
    (hashing all of them, ~5 GB, was 14 s of a profiled rebuild at a million passages, and
    none of those digests was ever read)."""
    n = -(-path.stat().st_size // BLOCK_BYTES)
    wanted = range(n) if every else sampled_blocks(n)
    digests: list[str | None] = [None] * n
    with open(path, "rb") as f:
        for b in wanted:
            f.seek(b * BLOCK_BYTES)
            digests[b] = hashlib.blake2b(f.read(BLOCK_BYTES), digest_size=16).hexdigest()
    return digests


def manifest_digest(manifest: dict) -> str:
    """Hash of the manifest's own fields: a hand edit (another model, other counts) shows."""
    fields = {k: v for k, v in manifest.items() if k != "digest"}
    payload = json.dumps(fields, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def _cannot_write(folder: Path, exc: OSError) -> IndexWriteError:
    """One clear line for a disk that is full, a folder that is read-only, a path that is a file."""
    if folder.exists() and not folder.is_dir():
        return IndexWriteError(
            f"The index path {folder} is a file, not a folder: pass another --index folder "
            "or move the file away, then run `qa build` again."
        )
    return IndexWriteError(
        f"Cannot write the index at {folder} ({exc.strerror or exc}): free disk space or make "
        "the folder writable, then run `qa build` again; the previous index is unchanged."
    )


def write_index(folder: Path, data: FolderData, kept_from=None) -> Path:
    """Write `data` as a new generation and make it the live one. Caller holds the lock.

    `kept_from`: the live generation's ArticleFile, which the lines of articles not read
    again (KeptArticle) are copied from, checked block by block as they are.
    Raises IndexWriteError (the previous index untouched) when the disk is full or the
    folder cannot be written.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    gen = folder / f"data-{stamp}"
    tmp = folder / f".tmp-{stamp}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        articles = data.passages.articles
        ids = [stored.id for stored in articles]
        _write(tmp / "article_ids.json", json.dumps(ids, ensure_ascii=False).encode())
        # What the next build compares, without parsing every article (a gigabyte at 1M).
        hashes = [stored.hash for stored in articles]
        _write(tmp / ARTICLE_HASHES, json.dumps(hashes).encode())
        with open(tmp / "articles.jsonl", "wb") as f:
            ends = _write_articles(f, articles, kept_from)
        if data.read is not None:
            _write(tmp / READ_FILE, json.dumps(data.read, ensure_ascii=False).encode())
        # So a load need not scan the whole file for line ends (1.4 GB at a million passages).
        _save_npy(tmp / ARTICLE_ENDS, ends)
        for name, array in data.arrays().items():
            _save_npy(tmp / f"{name}.npy", array)
        if data.ann is not None:
            import faiss

            faiss.write_index(data.ann, str(tmp / ANN_FILE))
        postings = data.postings
        _save_npy(tmp / "bm25_indptr.npy", postings.indptr.astype(np.int64))
        _save_npy(tmp / "bm25_docs.npy", postings.docs.astype(np.int32))
        _save_npy(tmp / "bm25_bound.npy", data.keyword_bound().astype(np.float32))
        _save_npy(tmp / "bm25_tf.npy", data.postings.tf)
        _save_npy(tmp / "bm25_lengths.npy", data.postings.lengths.astype(np.float32))
        _write(tmp / "vocab.json", json.dumps(list(data.vocab), ensure_ascii=False).encode())
        char_df = data.passages.char_df
        _write(tmp / "chars.json", json.dumps(char_df, ensure_ascii=False).encode())
        _sync_files(tmp)
        os.rename(tmp, gen)
        sizes = {p.name: p.stat().st_size for p in sorted(gen.iterdir())}
        manifest = {
            "format": FOLDER_FORMAT,
            "model": data.passages.model,
            "backend": data.passages.backend,
            "dim": data.passages.dim,
            "counts": data.counts(),
            "settings": data.settings.record(),
            "built_at": data.passages.built_at,
            "build_seconds": round(data.build_seconds, 3),
            "data": gen.name,
            "files": sizes,
            # Sizes catch truncation; checksums catch a file swapped in from elsewhere. Big
            # files get per-block digests, sampled at load (see FULL_CHECKSUM_UP_TO).
            "checksums": {
                name: checksum(gen / name)
                for name, size in sizes.items()
                if size <= FULL_CHECKSUM_UP_TO
            },
            "block_bytes": BLOCK_BYTES,
            "blocks": {
                name: _block_digests(gen / name, every=name == "articles.jsonl")
                for name, size in sizes.items()
                if size > FULL_CHECKSUM_UP_TO
            },
        }
        manifest["digest"] = manifest_digest(manifest)
        _fsync_write(
            folder / (MANIFEST + ".tmp"),
            json.dumps(manifest, ensure_ascii=False, indent=2).encode(),
        )
        os.replace(folder / (MANIFEST + ".tmp"), folder / MANIFEST)  # the commit point
        _fsync_dir(folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if not live_generation(folder) == gen.name:
            shutil.rmtree(gen, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, QAError):
            raise _cannot_write(folder, exc) from exc
        raise
    remove_stale(folder)
    return gen


def _write_articles(f, articles, kept_from) -> np.ndarray:
    """One JSON line per article; a KeptArticle's line is copied from `kept_from` (runs of
    consecutive lines at once), or, from an index written before lines were found by
    offset, made again from the article it holds. Returns the offset of each line's end."""
    ends = np.zeros(len(articles), dtype=np.int64)
    at = 0
    i = 0
    copies = hasattr(kept_from, "lines")
    held = {} if copies else {s.id: s for s in kept_from or ()}
    while i < len(articles):
        stored = articles[i]
        if isinstance(stored, KeptArticle) and copies:
            first = kept_from.position(stored.id)
            j = i + 1
            while (
                j < len(articles)
                and isinstance(articles[j], KeptArticle)
                and kept_from.position(articles[j].id) == first + j - i
            ):
                j += 1
            lines, line_ends = kept_from.lines(first, first + j - i)
            f.write(lines)
            ends[i:j] = at + line_ends
            at += len(lines)
            i = j
            continue
        if isinstance(stored, KeptArticle):
            stored = held[stored.id]
        a = stored.article
        record = {"id": a.id, **a.record(), "hash": stored.hash, "paragraphs": list(a.paragraphs)}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        f.write(line)
        at += len(line)
        ends[i] = at - 1
        i += 1
    return ends


def live_generation(folder: Path) -> str | None:
    """The data folder manifest.json names, or None: cheap enough to poll."""
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("data")
    except (OSError, ValueError, AttributeError):
        return None


def remove_stale(folder: Path) -> None:
    """Delete generations and temporary files that the manifest does not point at."""
    live = live_generation(folder)
    for path in folder.glob("data-*"):
        if path.name != live:
            shutil.rmtree(path, ignore_errors=True)
    for path in folder.glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (folder / (MANIFEST + ".tmp")).unlink()


@contextlib.contextmanager
def build_lock(folder: Path):
    """Hold the index's build lock, or raise BuildLockedError at once.

    The lock is an flock: it dies with its process, so a killed build never blocks the next.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".lock", "a+")  # closed by the `with` below
    except OSError as exc:
        raise _cannot_write(folder, exc) from exc
    with lock as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            raise BuildLockedError(
                f"Another build is already writing {folder} ({who}); "
                "wait for it to finish, then run `qa build` again if needed."
            ) from None
        with contextlib.suppress(OSError):  # who holds it is only for the message above
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}")
            f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)
