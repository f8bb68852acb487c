"""The index folder on disk: a manifest, plain .npy arrays and JSONL, written atomically.

Layout (see index/README.md):

    index/
      manifest.json        the commit point: format, model, counts, and which data folder is live
      data-<stamp>/        one generation: articles.jsonl, passage and sentence .npy arrays, vectors
      .lock                held while a build writes

A build writes a whole new data folder, then replaces manifest.json in one rename, so a
build that dies halfway leaves the previous index loadable.

`FolderStore` is the Store (qa/stores/__init__.py) a build writes through; `FolderIndex` is
what a load opens: exact or 8-bit-scan dense search (FAISS) and BM25 postings, in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ..errors import (
    BuildLockedError,
    IndexCorruptError,
    IndexNotFoundError,
    IndexWriteError,
    QAError,
    check_format,
)
from ..index.bm25 import BM25, TermCounts, TermWeights
from ..index.retrieve import VECTOR_DTYPE, Candidates, unrelated_similarity
from ..read.corpus import SUPPORTED_SUFFIXES
from ..types import Article, IndexedPassage, Manifest, Plan, Span, StoredArticle, StoredSettings
from .data import FORMAT_VERSION, Passages

if TYPE_CHECKING:
    import faiss

log = logging.getLogger("qa")

MANIFEST = "manifest.json"
ANN_FILE = "vectors.faiss"  # approximate-search index, written only for large indexes

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
    terms: TermCounts | None  # keyword counts per passage, what a build reuses; None: not read
    weights: TermWeights | None  # BM25 postings as stored, what queries read; None: derive
    ann: faiss.Index | None  # 8-bit codes of `vectors` (large indexes), else None: exact
    settings: StoredSettings
    build_seconds: float = 0.0

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.terms.vocab if self.terms is not None else self.weights.vocab

    def keyword_weights(self) -> TermWeights:
        """The BM25 postings: as stored, or derived from the term counts."""
        return self.weights if self.weights is not None else TermWeights.from_counts(self.terms)

    def counts(self) -> dict[str, int]:
        """As the manifest records them."""
        return {**self.passages.counts(), "terms": len(self.vocab)}

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-passage and per-sentence arrays, by the name of their file."""
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
        stored = StoredArticle(Article.from_record(r["id"], r, r["paragraphs"]), r["hash"])
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


ARRAY_FILES = tuple(
    f"{name}.npy"
    for name in ("passage_article", "passage_paragraph", "passage_start", "passage_end")
    + ("passage_hash", "sentence_ptr", "sentence_start", "sentence_end", "vectors")
)
# What an index written before passages were called passages (up to this release) named
# its passage arrays and manifest keys: read as they are, so that index needs no rebuild.
OLD_NAMES = {
    f"passage_{x}.npy": f"chunk_{x}.npy" for x in ("article", "paragraph", "start", "end", "hash")
}
OLD_COUNTS = {"chunks": "passages"}


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


def write_index(folder: Path, data: FolderData) -> Path:
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
        articles = data.passages.articles
        ids = [stored.article.id for stored in articles]
        _fsync_write(tmp / "article_ids.json", json.dumps(ids, ensure_ascii=False).encode())
        with open(tmp / "articles.jsonl", "w", encoding="utf-8") as f:
            for stored in articles:
                a = stored.article
                record = {
                    "id": a.id,
                    **a.record(),
                    "hash": stored.hash,
                    "paragraphs": list(a.paragraphs),
                }
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for name, array in data.arrays().items():
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
        char_df = data.passages.char_df
        _fsync_write(tmp / "chars.json", json.dumps(char_df, ensure_ascii=False).encode())
        _fsync_dir(tmp)
        os.rename(tmp, gen)
        sizes = {p.name: p.stat().st_size for p in sorted(gen.iterdir())}
        manifest = {
            "format": FORMAT_VERSION,
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
        if folder.is_dir() and any(
            p.suffix.lower() in SUPPORTED_SUFFIXES for p in itertools.islice(folder.iterdir(), 1000)
        ):
            raise IndexNotFoundError(
                f"{folder} holds articles, not an index: run `qa build --corpus {folder} "
                "--index <another folder>` and ask with that --index."
            )
        raise IndexNotFoundError(
            f"No index at {folder}: run `qa build --index {folder}` to create one."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(
            f"The index manifest {path} is unreadable ({exc}); run `qa build` to rebuild it."
        ) from None
    check_format(
        str(folder), manifest.get("format") if isinstance(manifest, dict) else None, FORMAT_VERSION
    )
    return manifest


def read_index(folder: Path, *, ann: bool = True, term_counts: bool = False) -> FolderData:
    """Load an index, checking it against its manifest. Never re-embeds.

    `ann=False` skips the approximate-search index (a build does not search);
    `term_counts=True` also reads each passage's keyword counts, which only a build reuses
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
) -> FolderData:
    try:
        gen = folder / manifest["data"]
        files = manifest["files"]
        for name, size in files.items():
            if (gen / name).stat().st_size != size:
                raise ValueError(f"{name} has the wrong size")
        if "digest" in manifest and manifest["digest"] != manifest_digest(manifest):
            raise ValueError("manifest.json was edited after the build")
        for name, checksum in manifest.get("checksums", {}).items():
            if _checksum(gen / name) != checksum:
                raise ValueError(f"{name} is not the file the build wrote")
        blocks = manifest.get("blocks", {})
        for name, digests in blocks.items():
            if name != "articles.jsonl":  # checked block by block as articles are parsed
                _check_sampled_blocks(gen / name, digests, manifest["block_bytes"])
        manifest = _renamed(manifest)
        arrays = {n: _load(gen / _file_name(n, files)) for n in ARRAY_FILES}
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
                n_docs=len(arrays["passage_article.npy"]),
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
        passages = Passages(
            model=manifest["model"],
            backend=manifest.get("backend", "torch"),
            dim=int(manifest["dim"]),
            articles=articles,
            article=arrays["passage_article.npy"],
            paragraph=arrays["passage_paragraph.npy"],
            start=arrays["passage_start.npy"],
            end=arrays["passage_end.npy"],
            sentence_ptr=arrays["sentence_ptr.npy"],
            sentence_start=arrays["sentence_start.npy"],
            sentence_end=arrays["sentence_end.npy"],
            char_df=json.loads((gen / "chars.json").read_text(encoding="utf-8")),
            built_at=manifest.get("built_at", ""),
        )
        data = FolderData(
            passages=passages,
            keys=arrays["passage_hash.npy"],
            vectors=arrays["vectors.npy"],
            terms=terms,
            weights=weights,
            ann=ann,
            settings=StoredSettings.from_record(manifest.get("settings", {})),
            build_seconds=float(manifest.get("build_seconds", 0.0)),
        )
        _check_consistent(data, manifest)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexCorruptError(
            f"The index at {folder} is damaged ({exc}); run `qa build --index {folder}` "
            "to rebuild it."
        ) from None
    return data


def _file_name(name: str, files: dict) -> str:
    """The name the generation stores `name` under: its own, or the one it had before."""
    return OLD_NAMES.get(name, name) if name not in files else name


def _renamed(manifest: dict) -> dict:
    """The manifest with the counts of an index written before the rename under their names
    now (its settings are read by StoredSettings.from_record)."""
    counts = {OLD_COUNTS.get(k, k): v for k, v in manifest["counts"].items()}
    return {**manifest, "counts": counts}


def _check_consistent(data: FolderData, manifest: dict) -> None:
    counts = data.counts()
    if counts != manifest["counts"]:
        raise ValueError(f"counts {counts} do not match the manifest {manifest['counts']}")
    n = counts["passages"]
    if data.vectors.ndim != 2 or data.vectors.shape != (n, manifest["dim"]):
        raise ValueError(
            f"vectors have shape {data.vectors.shape}, expected ({n}, {manifest['dim']})"
        )
    if data.ann is not None and (data.ann.ntotal != n or data.ann.d != manifest["dim"]):
        raise ValueError(f"{ANN_FILE} holds {data.ann.ntotal} vectors, expected {n}")
    if data.terms is not None and data.terms.matrix.shape[0] != n:
        raise ValueError("passage arrays disagree in length")
    if data.weights is not None and (
        data.weights.indptr.shape[0] != len(data.vocab) + 1
        or data.weights.idf.shape[0] != len(data.vocab)
        or data.weights.docs.shape != data.weights.weights.shape
        or (data.weights.docs.size and int(data.weights.docs.max()) >= n)
    ):
        raise ValueError("keyword postings disagree with the passages")
    p = data.passages
    if p.sentence_ptr.shape[0] != n + 1 or data.keys.shape[0] != n:
        raise ValueError("passage arrays disagree in length")
    if n and not (0 <= p.article.min() and p.article.max() < len(p.articles)):
        raise ValueError("passages point at articles that do not exist")


def ann_index(vectors: np.ndarray) -> faiss.Index | None:
    """The approximate-search index a build stores for `vectors`, or None if exact is fast.

    Inner product on unit vectors is cosine similarity. Each dimension is coded in 8 bits
    between its minimum and maximum over the vectors.
    """
    if vectors.shape[0] <= EXACT_UP_TO:
        return None
    import faiss

    index = faiss.IndexScalarQuantizer(
        vectors.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index.train(x)
    index.add(x)
    return index


# -- the store: what a build reads and writes -------------------------------------------


class FolderStore:
    """An index folder: generations replaced atomically under a build lock (see above)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.label = str(folder)
        self._previous: FolderData | None = None

    def lock(self):
        """Hold the folder's build lock, or raise BuildLockedError at once."""
        return build_lock(self.folder)

    def manifest(self) -> Manifest | None:
        """The live index, read for a build; None when there is none (or it is damaged)."""
        try:
            data = read_index(self.folder, ann=False, term_counts=True)
        except IndexNotFoundError:
            return None
        except QAError as exc:
            # A damaged or outdated index is simply rebuilt: that is the repair.
            log.warning("Rebuilding from scratch: %s", exc)
            return None
        # A build reads every article (hashes, titles): parse them once, not per passage.
        articles = tuple(data.passages.articles)
        passages = dataclasses.replace(data.passages, articles=articles)
        self._previous = data = dataclasses.replace(data, passages=passages)
        return Manifest(
            model=passages.model,
            backend=passages.backend,
            dim=passages.dim,
            settings=data.settings,
            hashes={a.article.id: a.hash for a in articles},
        )

    def vectors(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """The stored vectors of those content keys the live index holds."""
        rows = _rows_by_key(self._previous)
        return {k: self._previous.vectors[rows[k]] for k in keys if k in rows}

    def write(self, plan: Plan) -> None:
        """Write `plan` as a new generation and make it live. Caller holds `lock()`."""
        previous = self._previous
        if previous is not None and (previous.passages.model, previous.passages.backend) != (
            plan.model,
            plan.backend,
        ):
            previous = None
        write_index(self.folder, _assemble(plan, previous))

    def open(self) -> FolderIndex:
        return FolderIndex(read_index(self.folder))

    def generation(self) -> str | None:
        """The live generation's name: it changes with every build (cheap to poll)."""
        return live_generation(self.folder)


def _rows_by_key(previous: FolderData | None) -> dict[bytes, int]:
    if previous is None:
        return {}
    # numpy drops trailing NUL bytes of an S16 item: pad back, or one passage in 256 (its
    # hash ending in 0x00) would be re-embedded by every build.
    return {bytes(h).ljust(16, b"\0"): i for i, h in enumerate(previous.keys)}


def _assemble(plan: Plan, previous: FolderData | None) -> FolderData:
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
        ann=ann_index(vectors),
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
    """Keyword counts of each passage: kept rows copied as they are, new ones counted."""
    if not plan.kept:
        previous = None
    vocab = {t: i for i, t in enumerate(previous.terms.vocab)} if previous else {}
    indices: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for s in sources:
        if s >= 0:
            m = previous.terms.matrix
            lo, hi = m.indptr[s], m.indptr[s + 1]
            indices.append(m.indices[lo:hi])
            counts.append(m.data[lo:hi])
            continue
        # Counted in C; a Counter keeps first occurrences in order, so new terms get their
        # ids in the order of the text, then the title.
        bag = Counter(plan.terms[-1 - s])
        ids = np.fromiter(
            [vocab.setdefault(term, len(vocab)) for term in bag], dtype=np.int32, count=len(bag)
        )
        order = np.argsort(ids)
        indices.append(ids[order])
        counts.append(np.fromiter(bag.values(), dtype=np.float32, count=len(bag))[order])
    indptr = np.zeros(len(sources) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in indices], out=indptr[1:])
    flat = np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32)
    # Drop terms no passage uses any more (deleted articles), renumbering the rest in order.
    used, remapped = np.unique(flat, return_inverse=True)
    terms = list(vocab)
    matrix = sp.csr_matrix(
        (
            np.concatenate(counts) if counts else np.zeros(0, np.float32),
            remapped.astype(np.int32),
            indptr,
        ),
        shape=(len(sources), len(used)),
    )
    return TermCounts(tuple(terms[t] for t in used), matrix)


# -- the index: what a load reads and searches ------------------------------------------


class FolderIndex:
    """A loaded index folder: FAISS for dense search, BM25 postings for keywords."""

    def __init__(self, data: FolderData):
        import faiss

        self.data = data
        self.passages = data.passages
        self.bm25 = BM25(data.keyword_weights())
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
