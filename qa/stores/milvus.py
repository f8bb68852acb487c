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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import (
    BuildLockedError,
    IndexCorruptError,
    IndexNotFoundError,
    QAError,
    check_format,
)
from ..index.bm25 import BM25, K1, B, TermCounts
from ..index.retrieve import VECTOR_DTYPE, Candidates, unrelated_similarity
from ..types import Article, Manifest, Plan, StoredArticle, StoredSettings
from .data import FORMAT_VERSION, Passages

log = logging.getLogger("qa")

MAX_TEXT = 65535  # Milvus's longest VARCHAR, in bytes
PIECE_CHARS = 16000  # a paragraph is stored in pieces of this many characters (<= 4 bytes each)
BATCH = 256  # rows per insert, ids per `in [...]` filter
MAX_HITS = 16384  # the most hits Milvus returns for one search
HEAD = -1  # paragraph number of an article's head row
# Names stored in a user's Milvus, kept from the first release so existing indexes load: the
# passages' collection, and the key of a passage count (manifest counts, head row records).
PASSAGES = "chunks"
PASSAGE_COUNT = "chunks"
COLLECTIONS = (PASSAGES, "paragraphs", "meta")
# How rows are laid out in the collections; an index of another layout is rebuilt.
# 2: rows carry their article's version, and head rows name the live one.
LAYOUT = 2


@dataclass(frozen=True)
class Target:
    """Where the index lives: `uri` is what MilvusClient takes (a .db file or http(s)://).

    `label` names it in messages: the address without any password or token.
    """

    uri: str
    token: str
    prefix: str
    label: str = ""

    @property
    def lite(self) -> bool:
        return not self.uri.startswith(("http://", "https://"))

    def collection(self, name: str) -> str:
        return f"{self.prefix}_{name}"


def parse_uri(index: str) -> Target:
    """`milvus:///abs/file.db`, `milvus://./rel.db` (Milvus Lite) or `milvus+http://host:19530`.

    `?prefix=NAME` names the collections; the token comes from QA_MILVUS_TOKEN, or from
    `user:password@` in the URI (percent-encoded as URIs are: `p%40ss` is `p@ss`).
    No message ever shows the password or token.
    """
    shown = redact(index)
    rest, _, query = index.partition("?")
    params = urllib.parse.parse_qs(query)
    prefix = params.get("prefix", [os.environ.get("QA_MILVUS_PREFIX", "qa")])[0]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", prefix):
        raise QAError(
            f"The Milvus collection prefix {prefix[:80]!r} is not allowed: use letters, digits "
            "and underscores, starting with a letter, e.g. ?prefix=news."
        )
    token = os.environ.get("QA_MILVUS_TOKEN", "")
    if rest.startswith("milvus://"):
        path = rest[len("milvus://") :]
        if not path.endswith(".db"):
            raise QAError(
                f"{shown} names no Milvus Lite file: its name must end in .db, e.g. "
                "milvus://./index.db or milvus:///srv/qa/index.db. A cluster is "
                "milvus+http://host:19530."
            )
        return Target(path, token, prefix, shown)
    url = urllib.parse.urlsplit(rest.removeprefix("milvus+"))
    try:
        port = url.port
    except ValueError:
        port = -1
    if not url.hostname or port == -1:
        raise QAError(
            f"{shown} is not a Milvus address: write it as milvus+http://host:19530 "
            "(the port a number up to 65535; an IPv6 host in brackets, [::1])."
        )
    user = urllib.parse.unquote(url.username or "")
    password = urllib.parse.unquote(url.password or "")
    if not token:
        if user and url.password is not None:
            token = f"{user}:{password}"
        else:
            token = password or user  # milvus+http://:KEY@host or KEY@host: an API key
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    uri = f"{url.scheme}://{host}{f':{port}' if port else ''}"
    return Target(uri, token, prefix, shown)


def redact(text: str) -> str:
    """`text` (an address, or a message holding one) without passwords or tokens:
    milvus+http://ann:p@host -> milvus+http://ann:***@host, milvus+http://KEY@host ->
    milvus+http://***@host, ?token=KEY -> ?token=***."""
    text = re.sub(r"(?<=://)([^/@\s:]*):[^/@\s]*@", r"\1:***@", text)
    text = re.sub(r"(?<=://)[^/@\s:]+@", "***@", text)
    return re.sub(r"(?i)\b(token|password|secret)=[^&#\s]*", r"\1=***", text)


def _clean_message(exc: BaseException, target: Target) -> str:
    """An exception's text as one line, without the target's token."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in {target.token, *target.token.split(":")[1:]} - {""}:
        text = text.replace(secret, "***")
    return text[:300]


def _connect(target: Target):
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise QAError(
            "The Milvus store needs pymilvus and milvus-lite: "
            "pip install 'qa-zh[milvus]' (or pip install pymilvus milvus-lite)."
        ) from None
    try:
        if target.lite:
            Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
        client = MilvusClient(uri=target.uri, token=target.token)
        for name in COLLECTIONS:
            if client.has_collection(target.collection(name)):
                # Collections are searchable only once loaded; after a restart they are not.
                client.load_collection(target.collection(name))
        return client
    except Exception as exc:  # pymilvus raises its own and grpc's errors
        if target.lite and _lite_locked(target.uri):
            raise BuildLockedError(
                f"Another process has the Milvus Lite file {target.uri} open (Milvus Lite "
                "serves one process at a time); stop it, or use a Milvus cluster."
            ) from None
        raise QAError(
            f"Cannot connect to Milvus at {target.label} ({_clean_message(exc, target)}); "
            "check the address, the token (QA_MILVUS_TOKEN) and that Milvus is running."
        ) from None


def _lite_locked(path: str) -> bool:
    import fcntl

    lock = Path(path) / "LOCK"
    if not lock.exists():
        return False
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def release(index: str) -> None:
    """Close the embedded Milvus Lite server of `index` in this process, if one runs.

    Milvus Lite lets one process at a time open a file; call this before another process
    (a `qa` command, a restarted server) opens it. A cluster URI is left alone.
    """
    target = parse_uri(index)
    if target.lite:
        with contextlib.suppress(ImportError):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(target.uri)


def _quote(value: str) -> str:
    """A string literal for a Milvus filter expression.

    JSON's escapes are those Milvus's expression grammar reads (\\", \\\\, \\n, \\t,
    \\uXXXX for other control characters); a raw newline would end the literal.
    """
    return json.dumps(value, ensure_ascii=False)


def _in(field: str, values: list[str]) -> str:
    return f"{field} in [{', '.join(_quote(v) for v in values)}]"


def _batches(items: list, size: int = BATCH) -> Iterator[list]:
    for begin in range(0, len(items), size):
        yield items[begin : begin + size]


_NON_WORD = re.compile(r"\W")


def _word(term: str) -> str:
    """A token as Milvus stores it: one word to any tokenizer ("28.8" -> "28_8")."""
    return _NON_WORD.sub("_", term)


def _row_key(*parts: object) -> str:
    return hashlib.blake2b("\x00".join(map(str, parts)).encode(), digest_size=16).hexdigest()


# -- collections ----------------------------------------------------------------------


def _create(client, target: Target, dim: int) -> None:
    from pymilvus import DataType, Function, FunctionType

    passages = client.create_schema(auto_id=False, enable_dynamic_field=False)
    passages.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    passages.add_field("article", DataType.VARCHAR, max_length=MAX_TEXT)
    passages.add_field("version", DataType.VARCHAR, max_length=64)  # live if its head names it
    passages.add_field("paragraph", DataType.INT64)
    passages.add_field("start", DataType.INT64)
    passages.add_field("end", DataType.INT64)
    passages.add_field("sentences", DataType.VARCHAR, max_length=MAX_TEXT)  # JSON [s0, e0, ...]
    passages.add_field("key", DataType.VARCHAR, max_length=64)  # model + text hash: vector reuse
    # The project's own tokens (jieba without HMM guessing, stopwords dropped:
    # qa/index/tokenize.py), title's included, space-separated: questions and passages are cut
    # by the same code, and
    # Milvus's BM25 (same k1, b and idf formula as qa/index/bm25.py) counts exactly those words.
    # Milvus's jieba analyzer would guess unknown words with HMM, cutting a name one way in
    # the passage and another in the question (in Milvus Lite it ignores "hmm": False).
    passages.add_field(
        "keywords",
        DataType.VARCHAR,
        max_length=MAX_TEXT,
        enable_analyzer=True,
        # Milvus Lite has no whitespace tokenizer; its "standard" one splits on non-word
        # characters, so tokens are stored with those replaced (`_word`).
        analyzer_params={"tokenizer": "standard" if target.lite else "whitespace"},
    )
    passages.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    passages.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    passages.add_function(
        Function(
            name="keywords_bm25",
            function_type=FunctionType.BM25,
            input_field_names=["keywords"],
            output_field_names=["sparse"],
        )
    )
    index = client.prepare_index_params()
    if target.lite:
        index.add_index("vector", index_type="FLAT", metric_type="IP")  # exact, as FAISS here
    else:
        # A cluster holds millions of passages: graph search, recall ~0.99 at these settings.
        index.add_index(
            "vector", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200}
        )
    bm25 = {"bm25_k1": K1, "bm25_b": B}
    index.add_index(
        "sparse",
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="BM25",
        # The project's BM25 parameters. Milvus Lite reads index parameters only from the
        # nested "params" a cluster also accepts, not from the flat keys pymilvus now sends.
        params={"params": bm25} if target.lite else bm25,
    )
    _make(client, target.collection(PASSAGES), passages, index)

    for name, fields in (
        (
            "paragraphs",
            [
                ("article", DataType.VARCHAR, {"max_length": MAX_TEXT}),
                ("version", DataType.VARCHAR, {"max_length": 64}),  # a head: the live one
                ("number", DataType.INT64, {}),  # paragraph number; HEAD for the article row
                ("part", DataType.INT64, {}),  # piece of a long paragraph
                ("text", DataType.VARCHAR, {"max_length": MAX_TEXT}),
                ("position", DataType.INT64, {}),  # the article's place in the corpus
                ("hash", DataType.VARCHAR, {"max_length": 64}),
                ("record", DataType.VARCHAR, {"max_length": MAX_TEXT}),  # JSON: title ...
            ],
        ),
        ("meta", [("manifest", DataType.VARCHAR, {"max_length": MAX_TEXT})]),
    ):
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
        for field, dtype, extra in fields:
            schema.add_field(field, dtype, **extra)
        # Milvus wants a vector field in every collection; this one is never searched.
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
        params = client.prepare_index_params()
        params.add_index("unused", index_type="FLAT", metric_type="L2")
        _make(client, target.collection(name), schema, params)


def _make(client, name: str, schema, index) -> None:
    client.create_collection(name, schema=schema)
    # Without `sync=False` pymilvus polls every index for 0.5 s, asking for a timestamp
    # Milvus Lite cannot give; a search before an index is built is exact anyway.
    client.create_index(name, index, sync=False)
    client.load_collection(name)


def _drop(client, target: Target) -> None:
    for name in COLLECTIONS:
        if client.has_collection(target.collection(name)):
            client.drop_collection(target.collection(name))


def _read_manifest(client, target: Target) -> dict | None:
    if not client.has_collection(target.collection("meta")):
        return None
    rows = client.get(target.collection("meta"), ids=["manifest"], output_fields=["manifest"])
    return json.loads(rows[0]["manifest"]) if rows else None


def _scan(client, target: Target, name: str, filter_: str, fields: list[str]) -> Iterator[dict]:
    """Every row of collection `name` matching `filter_`.

    A cluster answers one query with at most 16384 rows, so it is read with an iterator;
    Milvus Lite returns all rows at once (and cannot serve an iterator's snapshot time).
    """
    collection = target.collection(name)
    if target.lite:
        yield from client.query(collection, filter=filter_, output_fields=fields)
        return
    it = client.query_iterator(collection, batch_size=4096, filter=filter_, output_fields=fields)
    try:
        while batch := it.next():
            yield from batch
    finally:
        it.close()


# -- build ----------------------------------------------------------------------------


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
            self._client = _connect(self.target)
        return self._client

    def lock(self):
        """Nothing to hold: Milvus Lite admits one process at a time; on a cluster, run one
        build at a time (nothing else stops two)."""
        return contextlib.nullcontext()

    def manifest(self) -> Manifest | None:
        with self._failing():
            m = _read_manifest(self.client, self.target)
            if m is not None and (m.get("format"), m.get("layout")) != (FORMAT_VERSION, LAYOUT):
                log.info("The Milvus index has another format: rebuilding its collections.")
                m = None
            if m is None:
                return None
            self._manifest = m
            for row in _scan(
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
            for batch in _batches(sorted({k.hex() for k in keys})):
                for row in self.client.query(
                    self.target.collection(PASSAGES),
                    filter=_in("key", batch),
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
        return _scan(self.client, self.target, collection, filter_, fields)

    @contextlib.contextmanager
    def _failing(self):
        try:
            yield
        except QAError:
            raise
        except Exception as exc:  # pymilvus's and grpc's errors: one line, never a traceback
            raise QAError(
                f"The Milvus build failed ({_clean_message(exc, self.target)}); the index at "
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
                "pk": _row_key(versions[c.article_id], c.paragraph, c.start),
                "article": c.article_id,
                "version": versions[c.article_id],
                "paragraph": c.paragraph,
                "start": c.start,
                "end": c.end,
                "sentences": json.dumps([x for s in c.sentences for x in (s.start, s.end)]),
                "keywords": " ".join(map(_word, terms)),
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
            _drop(client, target)
            _create(client, target, plan.dim)
        # New versions first: no head names them yet, so loads do not see them.
        for batch in _batches(rows):
            client.upsert(target.collection(PASSAGES), batch)
        for batch in _batches(texts):
            client.upsert(target.collection("paragraphs"), batch)
        # The switch: each head row names its article's new version.
        for batch in _batches(heads):
            client.upsert(target.collection("paragraphs"), batch)
        # Then what no head names any more: removed articles, old versions of rewritten ones.
        for ids in _batches(gone):
            for name in (PASSAGES, "paragraphs"):
                client.delete(target.collection(name), filter=_in("article", ids))
        for batch in _batches(write):
            ids = [s.article.id for s in batch]
            live = [versions[i] for i in ids]
            for name in (PASSAGES, "paragraphs"):
                client.delete(
                    target.collection(name),
                    filter=f"{_in('article', ids)} and not ({_in('version', live)})",
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
    return _row_key(item.article.id, item.hash, json.dumps(shape, sort_keys=True))


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
        "pk": _row_key(a.id, HEAD, 0),
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
                    "pk": _row_key(version, p, part),
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


# -- load and search ------------------------------------------------------------------


class MilvusIndex:
    """An opened Milvus index: the passages' places and text in memory (what the answerer
    reads), vectors and BM25 postings in Milvus (what searches read)."""

    def __init__(self, target: Target, client):
        self.target, self.client = target, client
        self.label = label = target.label
        try:
            manifest = _read_manifest(client, target)
        except Exception as exc:
            raise IndexCorruptError(
                f"The Milvus index at {label} cannot be read ({_clean_message(exc, target)})"
                f"; run `qa build --index {label}` to rebuild it."
            ) from None
        if manifest is None:
            raise IndexNotFoundError(
                f"No index in Milvus at {label}: run `qa build --index {label}` to create one."
            )
        check_format(
            label,
            f"{manifest.get('format')}.{manifest.get('layout', 1)}",
            f"{FORMAT_VERSION}.{LAYOUT}",
        )
        self.manifest = manifest
        self.stale = 0  # passage rows no head names (counted by `_read`)
        self._passages = target.collection(PASSAGES)
        try:
            self.passages, terms = self._read()
            self.unrelated = unrelated_similarity(len(self.pks), self._vectors_at)
        except QAError:
            raise
        except Exception as exc:  # missing rows or fields, or pymilvus's own errors
            raise IndexCorruptError(
                f"The Milvus index at {label} is damaged or cannot be read "
                f"({_clean_message(exc, target)}); run `qa build --index {label}` "
                "to rebuild it."
            ) from None
        # Word rarity for the answerer (coverage, confidence): the project's own BM25
        # statistics over the stored tokens, the same numbers a folder index has.
        self.bm25 = BM25(terms)

    def _read(self) -> tuple[Passages, TermCounts]:
        """The passages, and the keyword counts of each (for word rarity)."""
        m, t, c = self.manifest, self.target, self.client
        heads: list[dict] = []
        # Rows of versions no head names (a build's new rows before its switch, or what a
        # failed build left) are read past: each article is its live version, whole.
        texts: dict[tuple[str, int], list[tuple[int, str]]] = {}
        for row in _scan(
            c,
            t,
            "paragraphs",
            "number >= -1",
            ["version", "number", "part", "text", "position", "record", "hash", "article"],
        ):
            if row["number"] == HEAD:
                heads.append(row)
            else:
                texts.setdefault((row["version"], row["number"]), []).append(
                    (row["part"], row["text"])
                )
        heads.sort(key=lambda r: r["position"])
        live = {row["version"] for row in heads}
        articles, records = [], []
        for row in heads:
            record = json.loads(row["record"])
            records.append(record)
            paragraphs = tuple(
                "".join(text for _, text in sorted(texts[(row["version"], p)]))
                for p in range(record["paragraphs"])
            )
            article = Article.from_record(row["article"], record, paragraphs)
            articles.append(StoredArticle(article, row["hash"]))
        number = {a.article.id: i for i, a in enumerate(articles)}
        stored = list(
            _scan(
                c,
                t,
                PASSAGES,
                'pk != ""',
                ["pk", "article", "version", "paragraph", "start", "end", "sentences", "keywords"],
            )
        )
        rows = [r for r in stored if r["version"] in live]
        # Searches ask Milvus for this many more hits, so rows no head names cannot crowd
        # out live ones.
        self.stale = len(stored) - len(rows)
        rows.sort(key=lambda r: (number[r["article"]], r["paragraph"], r["start"]))
        found = Counter(r["article"] for r in rows)
        for article, record in zip(articles, records, strict=True):
            if found[article.article.id] != record[PASSAGE_COUNT]:
                raise ValueError(
                    f"{article.article.id[:80]!r} has {found[article.article.id]} passages, "
                    f"its head row says {record[PASSAGE_COUNT]}"
                )
        self.rows = {r["pk"]: i for i, r in enumerate(rows)}
        self.pks = [r["pk"] for r in rows]
        self._ids = number
        spans = [json.loads(r["sentences"]) for r in rows]
        sentence_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(s) // 2 for s in spans], out=sentence_ptr[1:])
        flat = np.asarray([x for s in spans for x in s], dtype=np.int32).reshape(-1, 2)
        terms = TermCounts.from_documents([r["keywords"].split() for r in rows])
        char_df: Counter[str] = Counter()
        for r in rows:
            paragraph = articles[number[r["article"]]].article.paragraphs[r["paragraph"]]
            char_df.update(set(paragraph[r["start"] : r["end"]]))
        passages = Passages(
            model=m["model"],
            backend=m.get("backend", "torch"),
            dim=int(m["dim"]),
            articles=tuple(articles),
            article=np.asarray([number[r["article"]] for r in rows], dtype=np.int32),
            paragraph=np.asarray([r["paragraph"] for r in rows], dtype=np.int32),
            start=np.asarray([r["start"] for r in rows], dtype=np.int32),
            end=np.asarray([r["end"] for r in rows], dtype=np.int32),
            sentence_ptr=sentence_ptr,
            sentence_start=flat[:, 0].copy(),
            sentence_end=flat[:, 1].copy(),
            char_df=dict(char_df),
            built_at=m.get("built_at", ""),
        )
        return passages, terms

    def _vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of these passage rows."""
        pks = [self.pks[i] for i in rows.tolist()]
        found: dict[str, list[float]] = {}
        for batch in _batches(pks):
            for row in self.client.get(
                self._passages,
                ids=batch,
                output_fields=["vector"],
                consistency_level="Strong",
            ):
                found[row["pk"]] = row["vector"]
        return np.asarray([found[pk] for pk in pks], dtype=np.float32)

    def idf_of(self, term: str) -> float:
        """How rare a keyword token is in the index (BM25 idf), looked up by its stored form."""
        return self.bm25.idf_of(_word(term))

    def article(self, article_id: str) -> Article:
        """The article with this id; KeyError if none."""
        return self.passages.articles[self._ids[article_id]].article

    def candidates(self, query_vector: np.ndarray, query_terms: list[str], k: int) -> Candidates:
        """Milvus's `k` best passages of each kind (dense, keyword), with both scores."""
        try:
            return self._candidates(query_vector, query_terms, k)
        except Exception as exc:  # Milvus down or restarted: one line, never a traceback
            raise QAError(
                f"Milvus at {self.label} did not answer the search "
                f"({_clean_message(exc, self.target)}); check that it is running, "
                "then ask again."
            ) from None

    def _candidates(self, query_vector: np.ndarray, query_terms: list[str], k: int) -> Candidates:
        client, rows = self.client, self.rows
        n, extra = len(rows), min(self.stale, MAX_HITS)
        want = min(k, n)
        if want <= 0:
            return Candidates(
                np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
            )
        q = np.asarray(query_vector, dtype=np.float32).ravel()
        params = (
            {"metric_type": "IP"}
            if self.target.lite
            else {"metric_type": "IP", "params": {"ef": max(2 * want, 64)}}
        )
        dense_hits = client.search(
            self._passages,
            data=[q.tolist()],
            anns_field="vector",
            limit=min(want + extra, MAX_HITS),
            output_fields=["vector"],
            search_params=params,
        )[0]
        vectors = {h["pk"]: h["entity"]["vector"] for h in dense_hits if h["pk"] in rows}
        keyword: dict[str, float] = {}
        text = " ".join(dict.fromkeys(map(_word, query_terms)))  # each once, as qa/index/bm25.py
        if text.strip():
            # More than `want`, so most dense candidates get their keyword score too; one
            # below all of these counts 0 (the folder index knows its exact, tiny score).
            sparse_hits = client.search(
                self._passages,
                data=[text],
                anns_field="sparse",
                limit=min(min(4 * want, n) + extra, MAX_HITS),
                search_params={"metric_type": "BM25"},
            )[0]
            # Milvus Lite reports -score as the distance, a cluster +score: BM25 is >= 0.
            keyword = {h["pk"]: abs(float(h["distance"])) for h in sparse_hits if h["pk"] in rows}
        ranked = sorted(keyword, key=lambda pk: -keyword[pk])[:want]
        pool_pks = {pk for pk in vectors if pk in rows} | {
            pk for pk in ranked if keyword[pk] > 0 and pk in rows
        }
        missing = [pk for pk in pool_pks if pk not in vectors]
        for batch in _batches(missing):
            for row in client.get(self._passages, ids=batch, output_fields=["vector"]):
                vectors[row["pk"]] = row["vector"]
        pool_pks = [pk for pk in pool_pks if pk in vectors]  # rows deleted since the load
        pool_pks.sort(key=rows.__getitem__)  # passage order, as the folder index breaks ties
        matrix = np.asarray([vectors[pk] for pk in pool_pks], dtype=np.float32).reshape(
            len(pool_pks), -1
        )
        return Candidates(
            np.asarray([rows[pk] for pk in pool_pks], dtype=np.int64),
            matrix @ q if pool_pks else np.zeros(0, np.float32),
            np.asarray([keyword.get(pk, 0.0) for pk in pool_pks], dtype=np.float32),
        )


__all__ = ["MilvusIndex", "MilvusStore", "parse_uri", "redact", "release"]
