"""The folder Store (qa/stores/__init__.py): what a build reads of the live generation, and
how it writes the next one; what a load opens."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from ...errors import IndexNotFoundError, QAError
from ...types import Manifest, Plan
from .assemble import assemble
from .disk import ANN_FILE, FolderData, build_lock, live_generation, write_index
from .load import ArticleFile, read_index
from .search import FolderIndex

log = logging.getLogger("qa")


class FolderStore:
    """An index folder: generations replaced atomically under a build lock (disk.py)."""

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
            data = read_index(self.folder, ann=False, for_build=True)
        except IndexNotFoundError:
            return None
        except QAError as exc:
            # A damaged or outdated index is simply rebuilt: that is the repair.
            log.warning("Rebuilding from scratch: %s", exc)
            return None
        articles = data.passages.articles
        if isinstance(articles, ArticleFile) and articles.hashes is not None:
            # Stored beside the articles: a build parses only those it drops (char counts).
            hashes = dict(zip(articles.ids(), articles.hashes, strict=True))
        else:
            # An index written before the hashes were stored: parse every article once.
            articles = tuple(articles)
            hashes = {a.article.id: a.hash for a in articles}
        passages = dataclasses.replace(data.passages, articles=articles)
        ann = _trained(self.folder)
        self._previous = data = dataclasses.replace(data, passages=passages, ann=ann)
        return Manifest(
            model=passages.model,
            backend=passages.backend,
            dim=passages.dim,
            settings=data.settings,
            hashes=hashes,
            read=data.read,
        )

    def vectors(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """The stored vectors of those content keys the live index holds."""
        rows = _rows_by_key(self._previous)
        return {k: self._previous.vectors[rows[k]] for k in keys if k in rows}

    def write(self, plan: Plan) -> None:
        """Write `plan` as a new generation and make it live. Caller holds `lock()`."""
        old = self._previous
        same = old is not None and (old.passages.model, old.passages.backend) == (
            plan.model,
            plan.backend,
        )
        kept_from = old.passages.articles if old is not None else None
        write_index(self.folder, assemble(plan, old if same else None), kept_from)

    def open(self) -> FolderIndex:
        return FolderIndex(read_index(self.folder))

    def generation(self) -> str | None:
        """The live generation's name: it changes with every build (cheap to poll)."""
        return live_generation(self.folder)


def _trained(folder: Path):
    """The live approximate index, read into memory (not mapped, as a load does): the next
    build copies its training. None if there is none or it cannot be read (then it trains
    again)."""
    gen = live_generation(folder)
    path = folder / gen / ANN_FILE if gen else None
    if path is None or not path.is_file():
        return None
    import faiss

    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        return None


def _rows_by_key(previous: FolderData | None) -> dict[bytes, int]:
    if previous is None:
        return {}
    # numpy drops trailing NUL bytes of an S16 item: pad back, or one passage in 256 (its
    # hash ending in 0x00) would be re-embedded by every build.
    return {bytes(h).ljust(16, b"\0"): i for i, h in enumerate(previous.keys)}
