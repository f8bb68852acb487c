"""The collections of a Milvus index: their names and layout, connecting to them, making,
dropping and reading them, and the small helpers every row and filter goes through."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

from ...errors import BuildLockedError, QAError
from ...index.bm25 import K1, B
from .address import Target, clean_message

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


def connect(target: Target):
    """A client of `target` with its collections loaded; a QAError in one line if none."""
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
            f"Cannot connect to Milvus at {target.label} ({clean_message(exc, target)}); "
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


def _quote(value: str) -> str:
    """A string literal for a Milvus filter expression.

    JSON's escapes are those Milvus's expression grammar reads (\\", \\\\, \\n, \\t,
    \\uXXXX for other control characters); a raw newline would end the literal.
    """
    return json.dumps(value, ensure_ascii=False)


def where_in(field: str, values: list[str]) -> str:
    """The filter `field in [values]`, each value quoted."""
    return f"{field} in [{', '.join(_quote(v) for v in values)}]"


def batches(items: list, size: int = BATCH) -> Iterator[list]:
    """`items` in lists of at most `size`: what one insert or filter takes."""
    for begin in range(0, len(items), size):
        yield items[begin : begin + size]


_NON_WORD = re.compile(r"\W")


def stored_word(term: str) -> str:
    """A token as Milvus stores it: one word to any tokenizer ("28.8" -> "28_8")."""
    return _NON_WORD.sub("_", term)


def row_key(*parts: object) -> str:
    """A primary key (or version) made of `parts`, the same for the same parts."""
    return hashlib.blake2b("\x00".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def create_collections(client, target: Target, dim: int) -> None:
    """Make the three collections of an index with `dim`-dimensional vectors, loaded."""
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
        # characters, so tokens are stored with those replaced (`stored_word`).
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


def drop_collections(client, target: Target) -> None:
    """Drop the collections of the index, those that exist."""
    for name in COLLECTIONS:
        if client.has_collection(target.collection(name)):
            client.drop_collection(target.collection(name))


def read_manifest(client, target: Target) -> dict | None:
    """The stored manifest, as JSON; None when there is no index."""
    if not client.has_collection(target.collection("meta")):
        return None
    rows = client.get(target.collection("meta"), ids=["manifest"], output_fields=["manifest"])
    return json.loads(rows[0]["manifest"]) if rows else None


def scan_rows(client, target: Target, name: str, filter_: str, fields: list[str]) -> Iterator[dict]:
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
