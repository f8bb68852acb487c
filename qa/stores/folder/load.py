"""Reading a generation of an index folder back (disk.py writes it), checked against its
manifest: sizes, checksums, the manifest's own digest, and that the arrays agree."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ...errors import IndexCorruptError, IndexNotFoundError, check_format
from ...index.bm25 import Postings, TermCounts
from ...read import SUPPORTED_SUFFIXES
from ...types import Article, StoredArticle, StoredSettings
from ..data import Passages
from .disk import (
    ANN_FILE,
    ARRAYS,
    ARTICLE_ENDS,
    ARTICLE_HASHES,
    FULL_CHECKSUM_UP_TO,
    MANIFEST,
    READ_FILE,
    READS_FORMATS,
    FolderData,
    checksum,
    live_generation,
    manifest_digest,
    sampled_blocks,
)

# What an index written before passages were called passages (up to this release) named
# its passage arrays and manifest keys: read as they are, so that index needs no rebuild.
OLD_NAMES = {
    f"passage_{x}.npy": f"chunk_{x}.npy" for x in ("article", "paragraph", "start", "end", "hash")
}
OLD_COUNTS = {"chunks": "passages"}

log = logging.getLogger("qa")


class ArticleFile(Sequence):
    """The articles of a loaded generation, each parsed from articles.jsonl when first used.

    Parsing all of them took seconds at 100k articles, and a question shows a few. Each
    article's block of the file is checked against the manifest before it is parsed.
    """

    def __init__(
        self,
        path: Path,
        ids: list[str] | None,
        paragraphs: int,
        blocks: list[str],
        size: int,
        ends: np.ndarray | None = None,
        hashes: list[str] | None = None,
    ):
        self._path = path
        self._blob = _mapped(path)  # the pages a question shows are read, not the whole file
        if ends is None:  # written before the build stored the line ends: find them
            ends = np.flatnonzero(np.frombuffer(self._blob, dtype=np.uint8) == 0x0A)
        self._ends = ends
        self._starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
        self._blocks = blocks  # digest per block of `size` bytes; empty: checked whole at load
        self._size = size
        self._checked: set[int] = set()
        self._cache: dict[int, StoredArticle] = {}
        self.paragraphs = paragraphs  # total, from the manifest (checked by the build)
        self._ids = ids
        self.hashes = hashes  # each article's content hash, as stored; None: not stored
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

    def lines(self, first: int, end: int) -> tuple[bytes, np.ndarray]:
        """The bytes of articles first .. end - 1, lines as stored (checked against the
        manifest first), and the offset of each line's end in them."""
        lo, hi = int(self._starts[first]), int(self._ends[end - 1])
        self._check(lo, hi)
        return bytes(self._blob[lo : hi + 1]), self._ends[first:end] - lo

    def ids(self) -> list[str]:
        """The article ids in row order (parsed from the articles only if not stored)."""
        return self._ids if self._ids is not None else [a.article.id for a in self]

    def position(self, article_id: str) -> int:
        """Row of the article with this id; KeyError if there is none."""
        if self._position is None:
            self._position = {a: i for i, a in enumerate(self.ids())}
        return self._position[article_id]

    def _check(self, lo: int, hi: int) -> None:
        if not self._blocks:
            return
        size = self._size
        for b in range(lo // size, hi // size + 1):
            if b in self._checked:
                continue
            block = self._blob[b * size : (b + 1) * size]
            if hashlib.blake2b(block, digest_size=16).hexdigest() != self._blocks[b]:
                folder = self._path.parent.parent
                raise IndexCorruptError(
                    f"The index at {folder} is damaged ({self._path.name} is not the file "
                    f"the build wrote); run `qa build --index {folder}` to rebuild it."
                )
            self._checked.add(b)  # a set add is atomic: threads may only check twice


def _mapped(path: Path) -> bytes | mmap.mmap:
    """The file's bytes, memory-mapped (an empty file cannot be mapped)."""
    with open(path, "rb") as f:
        if not f.seek(0, 2):
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


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
        str(folder), manifest.get("format") if isinstance(manifest, dict) else None, READS_FORMATS
    )
    return manifest


def read_index(folder: Path, *, ann: bool = True, for_build: bool = False) -> FolderData:
    """Load an index, checking it against its manifest. Never re-embeds.

    `ann=False` skips the approximate-search index (a build does not search);
    `for_build=True` also reads what the last build read of the corpus (read.json), which
    only the next build uses.
    """
    manifest = read_manifest(folder)
    try:
        return _read_generation(folder, manifest, ann, for_build)
    except IndexCorruptError:
        # A build may have committed (and removed our generation) while we read: try the
        # new one once; if the manifest did not move, the damage is real.
        if live_generation(folder) in (None, manifest.get("data")):
            raise
        return _read_generation(folder, read_manifest(folder), ann, for_build)


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _load(path: Path) -> np.ndarray:
    # Memory-mapped: a load reads the headers, a question the pages it touches. At a
    # million passages the arrays are gigabytes (vectors, postings), and reading them all
    # took most of a load; the values are the same as read whole. Viewed as a plain array:
    # each index into an np.memmap makes a Python-level memmap object, and a question
    # indexes thousands of times (a fifth of a served answer's time; the mapping is kept).
    return np.load(path, allow_pickle=False, mmap_mode="r").view(np.ndarray)


def _read_generation(
    folder: Path, manifest: dict, with_ann: bool = True, for_build: bool = False
) -> FolderData:
    try:
        gen = folder / manifest["data"]
        files = manifest["files"]
        if "digest" in manifest and manifest["digest"] != manifest_digest(manifest):
            raise ValueError("manifest.json was edited after the build")
        for name in files:
            if name != READ_FILE:  # only the next build reads it: checked then (_was_read)
                _check_file(gen, name, manifest)
        blocks = manifest.get("blocks", {})
        manifest = _renamed(manifest)
        arrays = {n: _load(gen / _file_name(f"{n}.npy", files)) for n in ARRAYS}
        vocab = tuple(json.loads((gen / "vocab.json").read_text(encoding="utf-8")))
        if "bm25_tf.npy" in files:
            postings = Postings(
                vocab=vocab,
                indptr=_load(gen / "bm25_indptr.npy"),
                docs=_load(gen / "bm25_docs.npy"),
                tf=_load(gen / "bm25_tf.npy"),
                lengths=_load(gen / "bm25_lengths.npy"),
            )
        else:
            # Written before the counts were kept term-major (and weights stored): counts
            # per passage, turned into postings at each load until the next build.
            indptr = _load(gen / "terms_indptr.npy")
            matrix = sp.csr_matrix(
                (_load(gen / "terms_counts.npy"), _load(gen / "terms_indices.npy"), indptr),
                shape=(len(indptr) - 1, len(vocab)),
            )
            postings = Postings.from_counts(TermCounts(vocab, matrix))
        bound = _load(gen / "bm25_bound.npy") if "bm25_bound.npy" in files else None
        ids = None
        if "article_ids.json" in files:
            ids = json.loads((gen / "article_ids.json").read_text(encoding="utf-8"))
        ends = _load(gen / ARTICLE_ENDS) if ARTICLE_ENDS in files else None
        articles = ArticleFile(
            gen / "articles.jsonl",
            ids,
            int(manifest["counts"]["paragraphs"]),
            blocks.get("articles.jsonl", []),
            int(manifest.get("block_bytes", 0)),
            ends,
            _json(gen / ARTICLE_HASHES) if ARTICLE_HASHES in files and ids is not None else None,
        )
        if articles.hashes is not None and len(articles.hashes) != len(articles):
            raise ValueError(f"{ARTICLE_HASHES} and articles.jsonl disagree")
        if ids is not None and len(ids) != len(articles):
            raise ValueError("article_ids.json and articles.jsonl disagree")
        if ends is not None and len(ends) and ends[-1] != files["articles.jsonl"] - 1:
            raise ValueError(f"{ARTICLE_ENDS} and articles.jsonl disagree")
        ann = None
        if with_ann and ANN_FILE in files:
            import faiss

            # Mapped: the inverted lists of a large index are most of its bytes, and a
            # question reads the few lists it probes.
            ann = faiss.read_index(str(gen / ANN_FILE), faiss.IO_FLAG_MMAP)
        passages = Passages(
            model=manifest["model"],
            backend=manifest.get("backend", "torch"),
            dim=int(manifest["dim"]),
            articles=articles,
            article=arrays["passage_article"],
            paragraph=arrays["passage_paragraph"],
            start=arrays["passage_start"],
            end=arrays["passage_end"],
            sentence_ptr=arrays["sentence_ptr"],
            sentence_start=arrays["sentence_start"],
            sentence_end=arrays["sentence_end"],
            char_df=json.loads((gen / "chars.json").read_text(encoding="utf-8")),
            built_at=manifest.get("built_at", ""),
        )
        data = FolderData(
            passages=passages,
            keys=arrays["passage_hash"],
            vectors=arrays["vectors"],
            postings=postings,
            bound=bound,
            ann=ann,
            settings=StoredSettings.from_record(manifest.get("settings", {})),
            build_seconds=float(manifest.get("build_seconds", 0.0)),
            read=_was_read(gen, manifest) if for_build and READ_FILE in files else None,
        )
        _check_consistent(data, manifest)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexCorruptError(
            f"The index at {folder} is damaged ({exc}); run `qa build --index {folder}` "
            "to rebuild it."
        ) from None
    return data


def _check_file(gen: Path, name: str, manifest: dict) -> None:
    """ValueError unless the file has the size, and the checksum or sampled block digests,
    that the manifest says (articles.jsonl: its size; its blocks are checked as articles are
    parsed)."""
    if (gen / name).stat().st_size != manifest["files"][name]:
        raise ValueError(f"{name} has the wrong size")
    digest = manifest.get("checksums", {}).get(name)
    if digest is not None and checksum(gen / name) != digest:
        raise ValueError(f"{name} is not the file the build wrote")
    digests = manifest.get("blocks", {}).get(name)
    if digests is not None and name != "articles.jsonl":
        _check_sampled_blocks(gen / name, digests, manifest["block_bytes"])


def _was_read(gen: Path, manifest: dict) -> dict | None:
    """What the build that wrote the generation read of the corpus (read.json), or None if
    it is damaged: then the next build reads every file, which is all it costs (the index
    answers without it)."""
    try:
        _check_file(gen, READ_FILE, manifest)
        read = _json(gen / READ_FILE)
    except (OSError, ValueError, KeyError):
        log.warning("%s is damaged: every corpus file will be read", gen / READ_FILE)
        return None
    return read if isinstance(read, dict) else None


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
    k = data.postings
    if (
        k.lengths.shape != (n,)
        or k.indptr.shape != (len(k.vocab) + 1,)
        or k.docs.shape != k.tf.shape
        or k.indptr[-1] != len(k.docs)
        or (data.bound is not None and data.bound.shape != (len(k.vocab),))
        or (_whole_checked(k.docs) and len(k.docs) and int(k.docs.max()) >= n)
    ):
        raise ValueError("keyword postings disagree with the passages")
    p = data.passages
    if p.sentence_ptr.shape[0] != n + 1 or data.keys.shape[0] != n:
        raise ValueError("passage arrays disagree in length")
    if n and not (0 <= p.article.min() and p.article.max() < len(p.articles)):
        raise ValueError("passages point at articles that do not exist")


def _whole_checked(array: np.ndarray) -> bool:
    """Whether `array` is small enough to be read whole at load. A bigger one (the postings
    of a large index: gigabytes at a million passages) is checked by sampled block digests
    instead; reading it all would be most of the load."""
    return 0 < array.nbytes <= FULL_CHECKSUM_UP_TO


def _check_sampled_blocks(path: Path, digests: list[str], block_bytes: int) -> None:
    """Hash SAMPLED_BLOCKS blocks spread over the file, first and last included."""
    with open(path, "rb") as f:
        for b in sampled_blocks(len(digests)):
            f.seek(b * block_bytes)
            if hashlib.blake2b(f.read(block_bytes), digest_size=16).hexdigest() != digests[b]:
                raise ValueError(f"{path.name} is not the file the build wrote")
