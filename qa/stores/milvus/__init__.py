"""The index in Milvus instead of a folder: Milvus Lite (one local file) or a Milvus cluster.

    qa build --index milvus://./news.db            # Milvus Lite, embedded in this process
    qa build --index milvus+http://milvus:19530    # a cluster; token from QA_MILVUS_TOKEN
    qa.load("milvus:///srv/qa/news.db?prefix=news")

Three collections, named `<prefix>_chunks`, `<prefix>_paragraphs`, `<prefix>_meta` (prefix "qa"
unless the URI says `?prefix=NAME` or QA_MILVUS_PREFIX is set):

- chunks (the passages; the name is kept for existing indexes): one row per passage: where
  it is (article, paragraph, start, end), its sentence offsets, the content key of its
  embedded text, its dense vector, and its keywords (the project's jieba tokens of passage
  and title) from which Milvus's BM25 function derives a sparse vector;
- paragraphs: one row per paragraph (long ones in pieces) and one head row per article
  (number -1) with its title, source, metadata, content hash and position in the corpus;
- meta: one row, the manifest (format, model, dimension, counts, settings, build time).

Dense and keyword search run in Milvus; their scores are fused exactly as the folder index
fuses them (`Retriever.fuse`). A load also reads the paragraphs and passage positions into
memory, as the folder index does: the answerer reads sentences from them. See docs/milvus.md.

    address.py  where the index is: milvus:// addresses, secrets kept out of messages
    schema.py   the collections: names, layout, connecting, creating, reading rows
    store.py    MilvusStore: the Store a build writes through (versioned rows, no transactions)
    search.py   MilvusIndex: the loaded index, dense and keyword search in Milvus
"""

from __future__ import annotations

from .address import Target, parse_uri, redact, release
from .search import MilvusIndex
from .store import MilvusStore

__all__ = ["MilvusIndex", "MilvusStore", "Target", "parse_uri", "redact", "release"]
