"""The index in a folder: a manifest, plain .npy arrays and JSONL (index/README.md).

disk.py      what a generation holds (FolderData), writing one atomically, the build lock
load.py      reading the live generation back, checked against its manifest
assemble.py  a build's Plan made into a generation, reusing the previous one's rows
search.py    FolderIndex: the loaded index, dense (FAISS) and keyword (BM25) search
store.py     FolderStore: the Store a build writes through and a load opens
"""

from __future__ import annotations

from .disk import (
    ANN_FILE,
    FOLDER_FORMAT,
    MANIFEST,
    FolderData,
    build_lock,
    live_generation,
    manifest_digest,
    remove_stale,
    write_index,
)
from .load import read_index, read_manifest
from .search import FolderIndex
from .store import FolderStore

__all__ = [
    "ANN_FILE",
    "FOLDER_FORMAT",
    "MANIFEST",
    "FolderData",
    "FolderIndex",
    "FolderStore",
    "build_lock",
    "live_generation",
    "manifest_digest",
    "read_index",
    "read_manifest",
    "remove_stale",
    "write_index",
]
