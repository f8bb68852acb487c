"""A loaded Milvus index: the passages' places and text in memory (what the answerer reads),
dense and keyword search in Milvus, fused as the folder index fuses them."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from ...errors import IndexCorruptError, IndexNotFoundError, QAError, check_format
from ...index.bm25 import BM25, TermCounts
from ...types import Article, StoredArticle
from ..data import FORMAT_VERSION, Candidates, Passages, unrelated_similarity
from .address import Target, clean_message
from .schema import (
    HEAD,
    LAYOUT,
    MAX_HITS,
    PASSAGE_COUNT,
    PASSAGES,
    batches,
    read_manifest,
    scan_rows,
    stored_word,
)


class MilvusIndex:
    """An opened Milvus index: the passages' places and text in memory (what the answerer
    reads), vectors and BM25 postings in Milvus (what searches read)."""

    def __init__(self, target: Target, client):
        self.target, self.client = target, client
        self.label = label = target.label
        try:
            manifest = read_manifest(client, target)
        except Exception as exc:
            raise IndexCorruptError(
                f"The Milvus index at {label} cannot be read ({clean_message(exc, target)})"
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
                f"({clean_message(exc, target)}); run `qa build --index {label}` "
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
        for row in scan_rows(
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
            scan_rows(
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
        for batch in batches(pks):
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
        return self.bm25.idf_of(stored_word(term))

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
                f"({clean_message(exc, self.target)}); check that it is running, "
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
        # Each term once, as qa/index/bm25.py counts a question's terms.
        text = " ".join(dict.fromkeys(map(stored_word, query_terms)))
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
        for batch in batches(missing):
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
