"""The Milvus Store: a build writes only the rows of new, changed and removed articles,
without transactions: each article's rows carry a version its head row names."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np

from ...errors import QAError
from ...types import Manifest, Plan, StoredArticle, StoredSettings
from ..data import FORMAT_VERSION, VECTOR_DTYPE
from .address import clean_message, parse_uri
from .schema import (
    COLLECTIONS,
    HEAD,
    LAYOUT,
    MAX_TEXT,
    PASSAGE_COUNT,
    PASSAGES,
    PIECE_CHARS,
    batches,
    connect,
    create_collections,
    drop_collections,
    read_manifest,
    row_key,
    scan_rows,
    stored_word,
    where_in,
)
from .search import MilvusIndex

log = logging.getLogger("qa")


class MilvusStore:
    """An index in Milvus: a build writes only the rows of new, changed and removed articles.

    Milvus has no transactions, so each article's rows carry a version (its id, content
    and stored settings, hashed) and its head row names the live one. `write` first checks
    every row it will write, then writes the new versions beside the old ones (unseen by
    loads), then switches each head row, then deletes what no head names. A build that
    fails before the switch leaves the previous index answering as it did; after it, each
    article answers from its old or its new version, whole.
    """

    def __init__(self, location: str):
        self.target = parse_uri(location)
        self.label = self.target.label
        self._client = None
        self._manifest: dict | None = None  # as stored, when this version reads its layout
        # article id -> (hash, position, version, record) of its live rows
        self._heads: dict[str, tuple[str, int, str, str]] = {}

    @property
    def client(self):
        if self._client is None:
            self._client = connect(self.target)
        return self._client

    def lock(self):
        """Nothing to hold: Milvus Lite admits one process at a time; on a cluster, run one
        build at a time (nothing else stops two)."""
        return contextlib.nullcontext()

    def manifest(self) -> Manifest | None:
        with self._failing():
            m = read_manifest(self.client, self.target)
            if m is not None and (m.get("format"), m.get("layout")) != (FORMAT_VERSION, LAYOUT):
                log.info("The Milvus index has another format: rebuilding its collections.")
                m = None
            if m is None:
                return None
            self._manifest = m
            for row in scan_rows(
                self.client,
                self.target,
                "paragraphs",
                f"number == {HEAD}",
                ["article", "hash", "position", "version", "record"],
            ):
                self._heads[row["article"]] = (
                    row["hash"],
                    row["position"],
                    row["version"],
                    row["record"],
                )
            return Manifest(
                model=m["model"],
                backend=m.get("backend", "torch"),
                dim=int(m["dim"]),
                settings=StoredSettings.from_record(m.get("settings", {})),
                hashes={a: head[0] for a, head in self._heads.items()},
            )

    def vectors(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """The stored vectors of those content keys Milvus holds."""
        known: dict[bytes, np.ndarray] = {}
        with self._failing():
            for batch in batches(sorted({k.hex() for k in keys})):
                for row in self.client.query(
                    self.target.collection(PASSAGES),
                    filter=where_in("key", batch),
                    output_fields=["key", "vector"],
                ):
                    known[bytes.fromhex(row["key"])] = np.asarray(row["vector"], dtype=np.float32)
        return known

    def write(self, plan: Plan) -> None:
        with self._failing():
            self._write(plan)

    def open(self) -> MilvusIndex:
        return MilvusIndex(self.target, self.client)

    def generation(self) -> None:
        """None: nothing watches a Milvus index for rebuilds by other processes."""
        return None

    def scan(self, collection: str, filter_: str, fields: list[str]) -> Iterator[dict]:
        """Every row of `collection` (one of COLLECTIONS) matching `filter_`."""
        return scan_rows(self.client, self.target, collection, filter_, fields)

    @contextlib.contextmanager
    def _failing(self):
        try:
            yield
        except QAError:
            raise
        except Exception as exc:  # pymilvus's and grpc's errors: one line, never a traceback
            raise QAError(
                f"The Milvus build failed ({clean_message(exc, self.target)}); the index at "
                f"{self.label} still answers as before. Fix the cause and run `qa build` again."
            ) from None

    def _write(self, plan: Plan) -> None:
        client, target = self.client, self.target
        m = self._manifest
        # Vectors of another model or backend must never mix with these: start over.
        fresh = m is None or (m["model"], m.get("backend", "torch")) != (plan.model, plan.backend)
        old = {} if fresh else self._heads
        stored = plan.articles
        versions = {s.article.id: _version(s, _settings_stored(plan.settings)) for s in stored}
        new_ids = set(versions)
        if len(new_ids) != len(stored):
            raise QAError("Two articles share one id; the Milvus index needs ids to be unique.")
        write = [s for s in stored if s.article.id not in plan.kept]
        gone = [i for i in old if i not in new_ids]
        positions = {s.article.id: n for n, s in enumerate(stored)}

        # Every row is made and checked before anything is written or dropped.
        passage_counts = Counter(p.article_id for p in plan.passages)
        records = {s.article.id: _record(s, passage_counts[s.article.id]) for s in write}
        for i in plan.kept:
            records[i] = old[i][3]
            passage_counts[i] = json.loads(records[i]).get(PASSAGE_COUNT, 0)
        # Unchanged articles keep their rows; only a moved head row is rewritten.
        heads = [
            _head_row(s, positions[i], versions[i], records[i])
            for s in stored
            if (i := s.article.id) not in plan.kept or old[i][1] != positions[i]
        ]
        texts = [r for s in write for r in _paragraph_rows(s, versions[s.article.id])]
        # Rounded as the folder index stores them, so both stores score passages alike.
        vectors = np.asarray(plan.vectors).astype(VECTOR_DTYPE).astype(np.float32)
        rows = [
            {
                "pk": row_key(versions[c.article_id], c.paragraph, c.start),
                "article": c.article_id,
                "version": versions[c.article_id],
                "paragraph": c.paragraph,
                "start": c.start,
                "end": c.end,
                "sentences": json.dumps([x for s in c.sentences for x in (s.start, s.end)]),
                "keywords": " ".join(map(stored_word, terms)),
                "key": key.hex(),
                "vector": vector.tolist(),
            }
            for c, key, terms, vector in zip(
                plan.passages, plan.keys, plan.terms, vectors, strict=True
            )
        ]
        for row in [*rows, *texts, *heads]:
            _check_fits(row)

        if fresh:
            drop_collections(client, target)
            create_collections(client, target, plan.dim)
        # New versions first: no head names them yet, so loads do not see them.
        for batch in batches(rows):
            client.upsert(target.collection(PASSAGES), batch)
        for batch in batches(texts):
            client.upsert(target.collection("paragraphs"), batch)
        # The switch: each head row names its article's new version.
        for batch in batches(heads):
            client.upsert(target.collection("paragraphs"), batch)
        # Then what no head names any more: removed articles, old versions of rewritten ones.
        for ids in batches(gone):
            for name in (PASSAGES, "paragraphs"):
                client.delete(target.collection(name), filter=where_in("article", ids))
        for batch in batches(write):
            ids = [s.article.id for s in batch]
            live = [versions[i] for i in ids]
            for name in (PASSAGES, "paragraphs"):
                client.delete(
                    target.collection(name),
                    filter=f"{where_in('article', ids)} and not ({where_in('version', live)})",
                )
        manifest = {
            "format": FORMAT_VERSION,
            "layout": LAYOUT,
            "model": plan.model,
            "backend": plan.backend,
            "dim": plan.dim,
            "counts": {
                "articles": len(stored),
                "paragraphs": sum(len(s.article.paragraphs) for s in stored),
                PASSAGE_COUNT: sum(passage_counts[s.article.id] for s in stored),
            },
            "settings": _settings_stored(plan.settings),
            "built_at": plan.built_at,
            "build_seconds": round(time.perf_counter() - plan.started, 3),
        }
        client.upsert(
            target.collection("meta"),
            [{"pk": "manifest", "manifest": json.dumps(manifest), "unused": [0.0, 0.0]}],
        )
        for name in COLLECTIONS:
            client.flush(target.collection(name))


def _version(item: StoredArticle, shape: dict) -> str:
    """Names one article's rows as one build wrote them: its id, content and splitting."""
    return row_key(item.article.id, item.hash, json.dumps(shape, sort_keys=True))


def _settings_stored(settings: StoredSettings) -> dict:
    """The build settings as a Milvus index stores them, and hashes them into row versions:
    under their first names, so the rows of an existing index keep their versions."""
    return {"chunk_chars": settings.passage_chars, "tokens": settings.tokens}


def _check_fits(row: dict) -> None:
    """QAError before anything is written when a text field is over Milvus's limit."""
    for field, value in row.items():
        if isinstance(value, str) and len(value) > MAX_TEXT // 4 and len(value.encode()) > MAX_TEXT:
            raise QAError(
                f"The {field} of article {row['article'][:80]!r} is too long to store in "
                f"Milvus ({len(value.encode())} bytes, at most {MAX_TEXT}); shorten it or "
                "leave the file out of the corpus, then run `qa build` again. The index is "
                "unchanged."
            )


def _record(item: StoredArticle, passages: int) -> str:
    """What a head row says of its article besides the text: title, source, metadata, and
    how many paragraphs and passages its version has (a load checks both)."""
    a = item.article
    return json.dumps(
        {**a.record(), "paragraphs": len(a.paragraphs), PASSAGE_COUNT: passages},
        ensure_ascii=False,
    )


def _head_row(item: StoredArticle, position: int, version: str, record: str) -> dict:
    """The article's head row: where it is, its record, and the version that is live."""
    a = item.article
    return {
        "pk": row_key(a.id, HEAD, 0),
        "article": a.id,
        "version": version,
        "number": HEAD,
        "part": 0,
        "text": "",
        "position": position,
        "hash": item.hash,
        "record": record,
        "unused": [0.0, 0.0],
    }


def _paragraph_rows(item: StoredArticle, version: str) -> list[dict]:
    a = item.article
    rows = []
    for p, text in enumerate(a.paragraphs):
        for part, begin in enumerate(range(0, max(len(text), 1), PIECE_CHARS)):
            rows.append(
                {
                    "pk": row_key(version, p, part),
                    "article": a.id,
                    "version": version,
                    "number": p,
                    "part": part,
                    "text": text[begin : begin + PIECE_CHARS],
                    "position": 0,
                    "hash": "",
                    "record": "",
                    "unused": [0.0, 0.0],
                }
            )
    return rows
