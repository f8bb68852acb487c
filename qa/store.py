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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .bm25 import TermCounts, TermWeights
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
class StoredArticle:
    """An article as indexed, with its content hash."""

    article: Article
    hash: str


def article_hash(article: Article) -> str:
    """Content hash of everything about an article that ends up in the index."""
    payload = json.dumps(
        [article.title, article.source, article.metadata, article.paragraphs], ensure_ascii=False
    )
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


class ArticleFile(Sequence):
    """The articles of a loaded generation, each parsed from articles.jsonl when first used.

    Parsing all of them took seconds at 100k articles, and a question shows a few. Each
    article's block of the file is checked against the manifest before it is parsed.
    """

    def __init__(self, path: Path, ids: list[str] | None, paragraphs: int, blocks: list[str]):
        self._path = path
        self._blob = path.read_bytes()
        ends = np.flatnonzero(np.frombuffer(self._blob, dtype=np.uint8) == 0x0A)
        self._ends = ends
        self._starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
        self._blocks = blocks  # digest per BLOCK_BYTES block; empty: checked whole at load
        self._checked: set[int] = set()
        self._cache: dict[int, StoredArticle] = {}
        self.paragraphs = paragraphs  # total, from the manifest (checked by the build)
        self._ids = ids
        self._position: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> StoredArticle:  # type: ignore[override]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"article {i} of {len(self)}")
        cached = self._cache.get(i)
        if cached is not None:
            return cached
        lo, hi = int(self._starts[i]), int(self._ends[i])
        self._check(lo, hi)
        r = json.loads(self._blob[lo:hi])
        stored = StoredArticle(
            Article(
                id=r["id"],
                title=r["title"],
                paragraphs=tuple(r["paragraphs"]),
                source=r["source"],
                metadata=tuple((k, str(v)) for k, v in r["metadata"].items()),
            ),
            r["hash"],
        )
        if len(self._cache) >= 4096:  # a server runs for days: keep only a working set
            self._cache.clear()
        self._cache[i] = stored
        return stored

    def __iter__(self) -> Iterator[StoredArticle]:
        return (self[i] for i in range(len(self)))

    def position(self, article_id: str) -> int:
        """Row of the article with this id; KeyError if there is none."""
        if self._position is None:
            ids = self._ids if self._ids is not None else [a.article.id for a in self]
            self._position = {a: i for i, a in enumerate(ids)}
        return self._position[article_id]

    def _check(self, lo: int, hi: int) -> None:
        if not self._blocks:
            return
        for b in range(lo // BLOCK_BYTES, hi // BLOCK_BYTES + 1):
            if b in self._checked:
                continue
            block = self._blob[b * BLOCK_BYTES : (b + 1) * BLOCK_BYTES]
            if hashlib.blake2b(block, digest_size=16).hexdigest() != self._blocks[b]:
                folder = self._path.parent.parent
                raise IndexCorruptError(
                    f"The index at {folder} is damaged ({self._path.name} is not the file "
                    f"the build wrote); run `qa build --index {folder}` to rebuild it."
                )
            self._checked.add(b)  # a set add is atomic: threads may only check twice


@dataclass(frozen=True)
class IndexData:
    """Everything a build writes and a load reads back.

    Chunk i covers `paragraph_text[chunk_start[i]:chunk_end[i]]` of paragraph
    `chunk_paragraph[i]` of article `chunk_article[i]`; its sentences are
    `sentence_start/end[sentence_ptr[i]:sentence_ptr[i+1]]` (paragraph offsets).
    """

    model: str
    articles: Sequence[StoredArticle]  # a tuple, or an ArticleFile when loaded
    chunk_article: np.ndarray  # int32, index into articles
    chunk_paragraph: np.ndarray  # int32
    chunk_start: np.ndarray  # int32
    chunk_end: np.ndarray  # int32
    chunk_hash: np.ndarray  # S16: hash of what was embedded, to reuse vectors
    sentence_ptr: np.ndarray  # int64, len = chunks + 1
    sentence_start: np.ndarray  # int32
    sentence_end: np.ndarray  # int32
    vectors: np.ndarray  # VECTOR_DTYPE (chunks, dim), unit length
    terms: TermCounts | None  # keyword tokens of each chunk; None when loaded for queries
    char_df: dict[str, int]  # in how many chunks each character occurs (for sentence choice)
    settings: dict  # build settings that change what is stored (chunk size, tokenizer)
    built_at: str = ""
    build_seconds: float = 0.0
    backend: str = "torch"  # what computed the vectors (see qa/onnx.py); a change re-embeds
    ann: object = None  # a faiss index over `vectors` for large indexes, else None (exact)
    weights: TermWeights | None = None  # BM25 postings as stored; None: derive from `terms`

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.terms.vocab if self.terms is not None else self.weights.vocab

    def keyword_weights(self) -> TermWeights:
        """The BM25 postings: as stored, or derived from the term counts."""
        return self.weights if self.weights is not None else TermWeights.from_counts(self.terms)

    def counts(self) -> dict[str, int]:
        if isinstance(self.articles, ArticleFile):
            paragraphs = self.articles.paragraphs
        else:
            paragraphs = sum(len(a.article.paragraphs) for a in self.articles)
        return {
            "articles": len(self.articles),
            "paragraphs": paragraphs,
            "chunks": int(self.chunk_article.shape[0]),
            "sentences": int(self.sentence_start.shape[0]),
            "terms": len(self.vocab),
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


def _block_digests(path: Path) -> list[str]:
    with open(path, "rb") as f:
        return [
            hashlib.blake2b(block, digest_size=16).hexdigest()
            for block in iter(lambda: f.read(BLOCK_BYTES), b"")
        ]


def _check_sampled_blocks(path: Path, digests: list[str], block_bytes: int) -> None:
    """Hash SAMPLED_BLOCKS blocks spread over the file, first and last included."""
    n = len(digests)
    picks = sorted({round(k * (n - 1) / max(SAMPLED_BLOCKS - 1, 1)) for k in range(SAMPLED_BLOCKS)})
    with open(path, "rb") as f:
        for b in picks:
            f.seek(b * block_bytes)
            if hashlib.blake2b(f.read(block_bytes), digest_size=16).hexdigest() != digests[b]:
                raise ValueError(f"{path.name} is not the file the build wrote")


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
        ids = [stored.article.id for stored in data.articles]
        _fsync_write(tmp / "article_ids.json", json.dumps(ids, ensure_ascii=False).encode())
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
        weights = data.keyword_weights()
        _save_npy(tmp / "bm25_idf.npy", weights.idf.astype(np.float32))
        _save_npy(tmp / "bm25_indptr.npy", weights.indptr.astype(np.int64))
        _save_npy(tmp / "bm25_docs.npy", weights.docs.astype(np.int32))
        _save_npy(tmp / "bm25_weights.npy", weights.weights.astype(np.float32))
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
            # Sizes catch truncation; checksums catch a file swapped in from elsewhere. Big
            # files get per-block digests, sampled at load (see FULL_CHECKSUM_UP_TO).
            "checksums": {
                name: _checksum(gen / name)
                for name, size in sizes.items()
                if size <= FULL_CHECKSUM_UP_TO
            },
            "block_bytes": BLOCK_BYTES,
            "blocks": {
                name: _block_digests(gen / name)
                for name, size in sizes.items()
                if size > FULL_CHECKSUM_UP_TO
            },
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


def read_index(folder: Path, *, ann: bool = True, term_counts: bool = False) -> IndexData:
    """Load an index, checking it against its manifest. Never re-embeds.

    `ann=False` skips the approximate-search index (a build does not search);
    `term_counts=True` also reads each chunk's keyword counts, which only a build reuses
    (queries read the stored BM25 postings).
    """
    manifest = read_manifest(folder)
    try:
        return _read_generation(folder, manifest, ann, term_counts)
    except IndexCorruptError:
        # A build may have committed (and removed our generation) while we read: try the
        # new one once; if the manifest did not move, the damage is real.
        if live_generation(folder) in (None, manifest.get("data")):
            raise
        return _read_generation(folder, read_manifest(folder), ann, term_counts)


def _load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def _read_generation(
    folder: Path, manifest: dict, with_ann: bool = True, with_counts: bool = False
) -> IndexData:
    try:
        gen = folder / manifest["data"]
        files = manifest["files"]
        for name, size in files.items():
            if (gen / name).stat().st_size != size:
                raise ValueError(f"{name} has the wrong size")
        if "digest" in manifest and manifest["digest"] != _manifest_digest(manifest):
            raise ValueError("manifest.json was edited after the build")
        for name, checksum in manifest.get("checksums", {}).items():
            if _checksum(gen / name) != checksum:
                raise ValueError(f"{name} is not the file the build wrote")
        blocks = manifest.get("blocks", {})
        for name, digests in blocks.items():
            if name != "articles.jsonl":  # checked block by block as articles are parsed
                _check_sampled_blocks(gen / name, digests, manifest["block_bytes"])
        arrays = {n: _load(gen / f"{n}.npy") for n in _ARRAYS}
        vocab = tuple(json.loads((gen / "vocab.json").read_text(encoding="utf-8")))
        terms = weights = None
        if with_counts or "bm25_weights.npy" not in files:  # older generations: derive
            indptr = _load(gen / "terms_indptr.npy")
            matrix = sp.csr_matrix(
                (_load(gen / "terms_counts.npy"), _load(gen / "terms_indices.npy"), indptr),
                shape=(len(indptr) - 1, len(vocab)),
            )
            terms = TermCounts(vocab, matrix)
        if "bm25_weights.npy" in files:
            weights = TermWeights(
                vocab=vocab,
                idf=_load(gen / "bm25_idf.npy"),
                indptr=_load(gen / "bm25_indptr.npy"),
                docs=_load(gen / "bm25_docs.npy"),
                weights=_load(gen / "bm25_weights.npy"),
                n_docs=len(arrays["chunk_article"]),
            )
        ids = None
        if "article_ids.json" in files:
            ids = json.loads((gen / "article_ids.json").read_text(encoding="utf-8"))
        articles = ArticleFile(
            gen / "articles.jsonl",
            ids,
            int(manifest["counts"]["paragraphs"]),
            blocks.get("articles.jsonl", []),
        )
        if ids is not None and len(ids) != len(articles):
            raise ValueError("article_ids.json and articles.jsonl disagree")
        ann = None
        if with_ann and ANN_FILE in files:
            import faiss

            ann = faiss.read_index(str(gen / ANN_FILE))
        data = IndexData(
            model=manifest["model"],
            backend=manifest.get("backend", "torch"),
            ann=ann,
            articles=articles,
            terms=terms,
            weights=weights,
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
    if data.terms is not None and data.terms.matrix.shape[0] != n:
        raise ValueError("chunk arrays disagree in length")
    if data.weights is not None and (
        data.weights.indptr.shape[0] != len(data.vocab) + 1
        or data.weights.idf.shape[0] != len(data.vocab)
        or data.weights.docs.shape != data.weights.weights.shape
        or (data.weights.docs.size and int(data.weights.docs.max()) >= n)
    ):
        raise ValueError("keyword postings disagree with the chunks")
    if data.sentence_ptr.shape[0] != n + 1:
        raise ValueError("chunk arrays disagree in length")
    if n and not (0 <= data.chunk_article.min() and data.chunk_article.max() < len(data.articles)):
        raise ValueError("chunks point at articles that do not exist")
