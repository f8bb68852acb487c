"""Where an index lives: a folder (folder/) or Milvus (milvus/), behind one small seam.

    store = open_store("index")               # or "milvus://./index.db", "milvus+http://..."
    store.manifest()      # what the live index holds (None: nothing), for a build to diff
    store.vectors(keys)   # stored vectors of those content keys, for a build to reuse
    store.write(plan)     # make the build's Plan the live index (qa/types.py: Plan)
    store.open()          # the live index, for questions: an Index
    store.generation()    # changes with every build; None where nothing watches for rebuilds

qa/build.py is the only pipeline and knows no store; a third store is a package here that
implements Store and Index, and one more branch in `open_store`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import numpy as np

from ..types import Article, Manifest, Plan
from .data import Candidates, Passages
from .folder import FolderStore
from .milvus import MilvusStore, redact

MILVUS = ("milvus://", "milvus+http://", "milvus+https://")


class Index(Protocol):
    """A loaded index: what the assistant asks of any store."""

    passages: Passages  # the passages' places, sentences and articles, in memory
    unrelated: float  # mean similarity of random passage pairs (retrieve.py: fuse)

    def candidates(self, query_vector: np.ndarray, query_terms: list[str], k: int) -> Candidates:
        """The `k` best passages of each kind (dense, keyword), with both raw scores."""

    def idf_of(self, term: str) -> float:
        """How rare a keyword token is in the index."""

    def article(self, article_id: str) -> Article:
        """The article with this id; KeyError if none."""


class Store(Protocol):
    """Where an index lives. A build calls `manifest`, `vectors`, `write` under `lock`."""

    label: str  # the location for messages, without secrets

    def lock(self) -> AbstractContextManager: ...

    def manifest(self) -> Manifest | None: ...

    def vectors(self, keys: list[bytes]) -> dict[bytes, np.ndarray]: ...

    def write(self, plan: Plan) -> None: ...

    def open(self) -> Index: ...

    def generation(self) -> str | None: ...


def is_milvus(location: object) -> bool:
    """True when `location` names a Milvus index rather than a folder."""
    return isinstance(location, str) and location.startswith(MILVUS)


def open_store(location: str | Path | Store) -> Store:
    """The store `location` names: a Milvus address (milvus://file.db, milvus+http(s)://host),
    else a folder; a Store object is taken as it is. Connects to nothing yet."""
    if is_milvus(location):
        return MilvusStore(location)
    if isinstance(location, (str, Path)):
        return FolderStore(Path(location))
    return location


__all__ = ["Index", "Passages", "Store", "is_milvus", "open_store", "redact"]
