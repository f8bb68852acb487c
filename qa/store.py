"""The index folder on disk: a manifest, plain .npy arrays and JSONL, written atomically.

Layout (see index/README.md):

    index/
      manifest.json        the commit point: format, model, counts, and which data folder is live
      data-<stamp>/        one generation: articles.jsonl, chunks.npz-like .npy arrays, vectors
      .lock                held while a build writes

A build writes a whole new data folder, then replaces manifest.json in one rename, so a
build that dies halfway leaves the previous index loadable.
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

import numpy as np
import scipy.sparse as sp

from .bm25 import TermCounts
from .errors import (
    BuildLockedError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexWriteError,
    QAError,
)
from .types import Article

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ANN_FILE = "vectors.faiss"  # approximate-search index, written only for large indexes
# Vectors are stored and held in half precision: half the disk and memory, and on CMRC the
# same retrieval and answer figures as float32 (benchmarks/README.md).
VECTOR_DTYPE = np.float16


@dataclass(frozen=True)
class StoredArticle:
    """An article as indexed, with its content hash."""

    article: Article
    hash: str


@dataclass(frozen=True)
class IndexData:
    """Everything a build writes and a load reads back.

    Chunk i covers `paragraph_text[chunk_start[i]:chunk_end[i]]` of paragraph
    `chunk_paragraph[i]` of article `chunk_article[i]`; its sentences are
    `sentence_start/end[sentence_ptr[i]:sentence_ptr[i+1]]` (paragraph offsets).
    """

    model: str
    articles: tuple[StoredArticle, ...]
    chunk_article: np.ndarray  # int32, index into articles
    chunk_paragraph: np.ndarray  # int32
    chunk_start: np.ndarray  # int32
    chunk_end: np.ndarray  # int32
    chunk_hash: np.ndarray  # S16: hash of what was embedded, to reuse vectors
    sentence_ptr: np.ndarray  # int64, len = chunks + 1
    sentence_start: np.ndarray  # int32
    sentence_end: np.ndarray  # int32
    vectors: np.ndarray  # VECTOR_DTYPE (chunks, dim), unit length
    terms: TermCounts  # keyword tokens of each chunk
    char_df: dict[str, int]  # in how many chunks each character occurs (for sentence choice)
    settings: dict  # build settings that change what is stored (chunk size, tokenizer)
    built_at: str = ""
    build_seconds: float = 0.0
    backend: str = "torch"  # what computed the vectors (see qa/onnx.py); a change re-embeds
    ann: object = None  # a faiss index over `vectors` for large indexes, else None (exact)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def counts(self) -> dict[str, int]:
        return {
            "articles": len(self.articles),
            "paragraphs": sum(len(a.article.paragraphs) for a in self.articles),
            "chunks": int(self.chunk_article.shape[0]),
            "sentences": int(self.sentence_start.shape[0]),
            "terms": len(self.terms.vocab),
        }


_ARRAYS = (
    "chunk_article",
    "chunk_paragraph",
    "chunk_start",
    "chunk_end",
    "chunk_hash",
    "sentence_ptr",
    "sentence_start",
    "sentence_end",
    "vectors",
)


def _fsync_write(path: Path, payload: bytes) -> None:
    with open(path, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checksum(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _manifest_digest(manifest: dict) -> str:
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


def write_index(folder: Path, data: IndexData) -> Path:
    """Write `data` as a new generation and make it the live one. Caller holds the lock.

    Raises IndexWriteError (the previous index untouched) when the disk is full or the
    folder cannot be written.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    gen = folder / f"data-{stamp}"
    tmp = folder / f".tmp-{stamp}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        with open(tmp / "articles.jsonl", "w", encoding="utf-8") as f:
            for stored in data.articles:
                a = stored.article
                record = {
                    "id": a.id,
                    "title": a.title,
                    "source": a.source,
                    "metadata": dict(a.metadata),
                    "hash": stored.hash,
                    "paragraphs": list(a.paragraphs),
                }
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for name in _ARRAYS:
            array = getattr(data, name)
            if name == "vectors":
                array = array.astype(VECTOR_DTYPE, copy=False)
            _save_npy(tmp / f"{name}.npy", array)
        if data.ann is not None:
            import faiss

            faiss.write_index(data.ann, str(tmp / ANN_FILE))
        m = data.terms.matrix
        _save_npy(tmp / "terms_indptr.npy", m.indptr.astype(np.int64))
        _save_npy(tmp / "terms_indices.npy", m.indices.astype(np.int32))
        _save_npy(tmp / "terms_counts.npy", m.data.astype(np.float32))
        _fsync_write(
            tmp / "vocab.json", json.dumps(list(data.terms.vocab), ensure_ascii=False).encode()
        )
        _fsync_write(tmp / "chars.json", json.dumps(data.char_df, ensure_ascii=False).encode())
        _fsync_dir(tmp)
        os.rename(tmp, gen)
        sizes = {p.name: p.stat().st_size for p in sorted(gen.iterdir())}
        manifest = {
            "format": FORMAT_VERSION,
            "model": data.model,
            "backend": data.backend,
            "dim": data.dim,
            "counts": data.counts(),
            "settings": data.settings,
            "built_at": data.built_at,
            "build_seconds": round(data.build_seconds, 3),
            "data": gen.name,
            "files": sizes,
            # Sizes catch truncation; checksums catch a file swapped in from elsewhere.
            "checksums": {name: _checksum(gen / name) for name in sizes},
        }
        manifest["digest"] = _manifest_digest(manifest)
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


def read_manifest(folder: Path) -> dict:
    """The manifest, checked for format; raises a QAError saying what to run."""
    path = folder / MANIFEST
    if not path.is_file():
        raise IndexNotFoundError(
            f"No index at {folder}: run `qa build --index {folder}` to create one."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(
            f"The index manifest {path} is unreadable ({exc}); run `qa build` to rebuild it."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexMismatchError(
            f"The index at {folder} has format {found!r}, this version reads format "
            f"{FORMAT_VERSION}; run `qa build` to rebuild it."
        )
    return manifest


def read_index(folder: Path, *, ann: bool = True) -> IndexData:
    """Load a whole index, checking it against its manifest. Never re-embeds.

    `ann=False` skips the approximate-search index (a build does not search).
    """
    manifest = read_manifest(folder)
    try:
        return _read_generation(folder, manifest, ann)
    except IndexCorruptError:
        # A build may have committed (and removed our generation) while we read: try the
        # new one once; if the manifest did not move, the damage is real.
        if live_generation(folder) in (None, manifest.get("data")):
            raise
        return _read_generation(folder, read_manifest(folder), ann)


def _read_generation(folder: Path, manifest: dict, with_ann: bool = True) -> IndexData:
    try:
        gen = folder / manifest["data"]
        for name, size in manifest["files"].items():
            if (gen / name).stat().st_size != size:
                raise ValueError(f"{name} has the wrong size")
        if "digest" in manifest and manifest["digest"] != _manifest_digest(manifest):
            raise ValueError("manifest.json was edited after the build")
        for name, checksum in manifest.get("checksums", {}).items():
            if _checksum(gen / name) != checksum:
                raise ValueError(f"{name} is not the file the build wrote")
        arrays = {n: np.load(gen / f"{n}.npy", allow_pickle=False) for n in _ARRAYS}
        vocab = tuple(json.loads((gen / "vocab.json").read_text(encoding="utf-8")))
        indptr = np.load(gen / "terms_indptr.npy", allow_pickle=False)
        matrix = sp.csr_matrix(
            (
                np.load(gen / "terms_counts.npy", allow_pickle=False),
                np.load(gen / "terms_indices.npy", allow_pickle=False),
                indptr,
            ),
            shape=(len(indptr) - 1, len(vocab)),
        )
        articles = []
        with open(gen / "articles.jsonl", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                article = Article(
                    id=r["id"],
                    title=r["title"],
                    paragraphs=tuple(r["paragraphs"]),
                    source=r["source"],
                    metadata=tuple((k, str(v)) for k, v in r["metadata"].items()),
                )
                articles.append(StoredArticle(article, r["hash"]))
        ann = None
        if with_ann and ANN_FILE in manifest["files"]:
            import faiss

            ann = faiss.read_index(str(gen / ANN_FILE))
        data = IndexData(
            model=manifest["model"],
            backend=manifest.get("backend", "torch"),
            ann=ann,
            articles=tuple(articles),
            terms=TermCounts(vocab, matrix),
            char_df=json.loads((gen / "chars.json").read_text(encoding="utf-8")),
            settings=manifest.get("settings", {}),
            built_at=manifest.get("built_at", ""),
            build_seconds=float(manifest.get("build_seconds", 0.0)),
            **arrays,
        )
        _check_consistent(data, manifest)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexCorruptError(
            f"The index at {folder} is damaged ({exc}); run `qa build --index {folder}` "
            "to rebuild it."
        ) from None
    return data


def _check_consistent(data: IndexData, manifest: dict) -> None:
    counts = data.counts()
    if counts != manifest["counts"]:
        raise ValueError(f"counts {counts} do not match the manifest {manifest['counts']}")
    n = counts["chunks"]
    if data.vectors.ndim != 2 or data.vectors.shape != (n, manifest["dim"]):
        raise ValueError(
            f"vectors have shape {data.vectors.shape}, expected ({n}, {manifest['dim']})"
        )
    if data.ann is not None and (data.ann.ntotal != n or data.ann.d != manifest["dim"]):
        raise ValueError(f"{ANN_FILE} holds {data.ann.ntotal} vectors, expected {n}")
    if data.terms.matrix.shape[0] != n or data.sentence_ptr.shape[0] != n + 1:
        raise ValueError("chunk arrays disagree in length")
    if n and not (0 <= data.chunk_article.min() and data.chunk_article.max() < len(data.articles)):
        raise ValueError("chunks point at articles that do not exist")
