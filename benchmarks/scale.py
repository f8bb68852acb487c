"""Scale benchmark: a folder index of N passages of realistic Chinese text, built and measured.

    python benchmarks/scale.py --passages 100000 --out /tmp/scale-100k.json
    python benchmarks/scale.py --passages 2000 --model hash --out /tmp/s.json   # no model

The passages are real sentences of the public sets in ../shared/data (CMRC 2018 dev and
trial, DRCD dev in simplified characters), recombined: each paragraph is a run of sentences
of one source context, sometimes followed by a run of another's, kept whole (dates,
numbers, names untouched); articles of 2-5 such paragraphs. Every paragraph is one passage
(at most SYNTHETIC_CHARS characters) and no two are equal (content hashes checked).

Embedding a million passages takes hours on 2 cores, so passage vectors are a stand-in:
every distinct sentence is embedded once by the real model (cached under --work), and a
passage's vector is the normalised sum of its sentences' vectors plus N(0, NOISE) per
dimension. It keeps the real dimension and a neighbour structure made of real vectors: two
passages sharing sentences are near. Questions are always embedded by the real model, and
its share of ask time is reported apart. The report says what is stand-in ("notes").

Figures (JSON, --out): passages, build_s (the `qa build` wall time without the stand-in
embedding), disk_mb, then in a fresh process: load_s (`qa.load`), rss_mb (process, after
load and the questions), ask/search/embedding latencies, ann_recall_at_10, bm25_agrees;
then rebuild_s (1,000 new articles added to the index, `qa build` again, without embedding).
Answers run with `Settings(reader=None)` (QA_READER=off): the reader reads 5 sentences at
any size, so it costs the same at every scale.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # noqa: E402  (benchmarks/ is not a package)
    ROOT,
    TimedEmbedder,
    in_fresh_process,
    machine,
    norm_text,
    pct,
    rss_mb,
    write_corpus,
)
from measure import ann_recall, load_index  # noqa: E402

# ../shared/data beside the project (or beside the folder of its git worktrees)
DATA = next(
    (
        p
        for p in (ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data")
        if p.is_dir()
    ),
    ROOT.parent / "shared" / "data",
)
SOURCES = (
    "cmrc2018/cmrc2018_dev.json",
    "cmrc2018/cmrc2018_train.json",
    "cmrc2018/cmrc2018_trial.json",
    "drcd/DRCD_dev.zhs.json",
)
QUESTION_SOURCES = SOURCES[0], SOURCES[3]  # CMRC dev and DRCD dev
SYNTHETIC_CHARS = 470  # below the 480-character passage size: one paragraph, one passage
NOISE = 0.02
REBUILD_ARTICLES = 1000


# -- the corpus --------------------------------------------------------------------------


def source_sentences() -> tuple[list[str], list[list[int]], list[str]]:
    """Distinct sentences of the public sets, the runs of them each context holds (in
    order), and each context's title."""
    from qa.eval.evaluate import read_squad
    from qa.index.split import sentence_texts, split_sentences

    sentences: dict[str, int] = {}
    runs, titles = [], []
    for path in (DATA / name for name in SOURCES):
        if not path.is_file():
            continue
        records, _ = read_squad(path)
        for r in records:
            for text in r["paragraphs"]:
                spans = sentence_texts(text, split_sentences(text))
                run = [sentences.setdefault(s, len(sentences)) for s in spans if len(s) <= 200]
                if len(run) >= 2:
                    runs.append(run)
                    titles.append(r["title"])
    if not runs:
        raise SystemExit(f"No CMRC 2018 or DRCD data under {DATA}: the benchmark needs it.")
    return list(sentences), runs, titles


def questions() -> list[str]:
    """CMRC dev and DRCD dev questions, interleaved (so any prefix holds both)."""
    from qa.eval.evaluate import read_squad

    paths = [DATA / name for name in QUESTION_SOURCES]
    sets = [[q.question for q in read_squad(p)[1]] for p in paths if p.is_file()]
    out = []
    for group in zip(*sets, strict=False):
        out += group
    return out


class Articles:
    """Articles of recombined real sentences; each paragraph's sentences (ids) are kept for
    its stand-in vector. Paragraphs never repeat: their content hashes are remembered."""

    def __init__(self, sentences: list[str], runs: list[list[int]], titles: list[str], seed: int):
        self.sentences, self.runs, self.titles = sentences, runs, titles
        self.rng = np.random.default_rng(seed)
        self.seen: set[bytes] = set()
        self.made = 0

    def make(
        self, prefix: str, *, passages: int | None = None, articles: int | None = None
    ) -> tuple[list[dict], list[list[int]]]:
        """Articles holding `passages` paragraphs in all (or `articles` articles), and the
        sentence ids of each paragraph."""
        records, parts = [], []
        left = passages if passages is not None else 6 * articles
        while left > 0 and (articles is None or len(records) < articles):
            n = min(int(self.rng.integers(2, 6)), left)
            first = int(self.rng.integers(len(self.runs)))
            paragraphs = []
            for p in range(n):
                source = first if p == 0 or self.rng.random() < 0.6 else None
                ids = self._paragraph(source)
                paragraphs.append("".join(self.sentences[i] for i in ids))
                parts.append(ids)
            records.append(
                {
                    "id": f"{prefix}-{self.made}",
                    "title": self.titles[first],
                    "paragraphs": paragraphs,
                }
            )
            self.made += 1
            left -= n
        return records, parts

    def _paragraph(self, source: int | None) -> list[int]:
        rng = self.rng
        while True:
            run = self.runs[source if source is not None else rng.integers(len(self.runs))]
            start = int(rng.integers(len(run)))
            ids = run[start : start + int(rng.integers(2, 7))]
            if rng.random() < 0.5:  # followed by a run of another context
                other = self.runs[rng.integers(len(self.runs))]
                at = int(rng.integers(len(other)))
                ids = ids + other[at : at + int(rng.integers(1, 4))]
            while sum(len(self.sentences[i]) for i in ids) > SYNTHETIC_CHARS:
                ids = ids[:-1]
            text = "".join(self.sentences[i] for i in ids)
            key = _key(text)
            if ids and key not in self.seen:
                self.seen.add(key)
                return ids


def _key(text: str) -> bytes:
    return hashlib.blake2b(norm_text(text).encode(), digest_size=16).digest()


# -- stand-in vectors --------------------------------------------------------------------


def sentence_vectors(sentences: list[str], model: str, backend: str, work: Path) -> np.ndarray:
    """Every sentence embedded by the real model once; cached in `work` by content."""
    from qa.index.embed import backend_of, make_embedder

    embedder = make_embedder(model, 32, backend)
    digest = hashlib.blake2b("\n".join(sentences).encode(), digest_size=8).hexdigest()
    cache = work / f"sentences-{embedder.name}-{backend_of(embedder)}-{digest}.npy"
    if cache.is_file():
        return np.load(cache)
    began = time.perf_counter()
    vectors = np.asarray(embedder.encode(sentences), dtype=np.float32)
    print(f"  embedded {len(sentences):,} sentences in {time.perf_counter() - began:.0f} s")
    work.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


class StandInEmbedder:
    """The stand-in vector of each known passage, by its text's hash: the normalised sum of
    its sentences' real vectors plus N(0, NOISE) per dimension. An unknown text is an
    error (the benchmark would measure the model, not the index)."""

    def __init__(self, name: str, backend: str, sentence_vectors: np.ndarray, seed: int):
        self.name, self.backend = name, backend
        self.base = sentence_vectors
        self.rng = np.random.default_rng(seed)
        self.rows: dict[bytes, list[int]] = {}
        self.seconds = 0.0

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])

    def add(self, records: list[dict], parts: list[list[int]]) -> None:
        texts = (p for r in records for p in r["paragraphs"])
        for text, ids in zip(texts, parts, strict=True):
            self.rows[_key(text)] = ids

    def encode(self, texts, *, progress=False):
        began = time.perf_counter()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            ids = self.rows.get(_key(text))
            if ids is None:
                raise KeyError(f"no stand-in vector for {text[:30]!r}")
            v = self.base[ids].sum(axis=0) + self.rng.normal(0, NOISE, self.dim)
            out[i] = v / np.linalg.norm(v)
        self.seconds += time.perf_counter() - began
        return out


# -- measuring ---------------------------------------------------------------------------


def measure(index: str, asked: list[str], agree_on: int, model: str, backend: str) -> dict:
    """In a fresh process: load, ask, search, ANN recall, BM25 against the exact formula."""
    import qa

    settings = qa.Settings(reader=None)
    loaded = load_index(index, settings, TimedEmbedder, model, backend)
    bot, embedder = loaded["bot"], loaded["embedder"]
    for q in asked[:5]:
        bot.ask(q)  # first calls (jieba's table, caches) are not latency
    ask, embed, search = [], [], []
    for q in asked:
        before = embedder.seconds
        t = time.perf_counter()
        bot.ask(q)
        ask.append(time.perf_counter() - t)
        embed.append(embedder.seconds - before)
        t = time.perf_counter()
        bot.search(q, 10)
        search.append(time.perf_counter() - t)
    rss = rss_mb()
    row = {
        "passages": len(bot.index.passages),
        "load_s": loaded["load_s"],
        "rss_mb": rss,
        "rss_index_mb": loaded["rss_loaded_mb"] - loaded["rss_base_mb"],
        "questions": len(asked),
        "ask_ms_p50": pct(ask, 50),
        "ask_ms_p95": pct(ask, 95),
        "question_embedding_ms_p50": pct(embed, 50),
        "question_embedding_ms_p95": pct(embed, 95),
        "ask_without_embedding_ms_p50": pct([a - e for a, e in zip(ask, embed, strict=True)], 50),
        "search_ms_p50": pct(search, 50),
        "search_ms_p95": pct(search, 95),
    }
    if index.startswith("milvus"):
        # Milvus Lite searches vectors exactly (FLAT) and computes BM25 itself, with
        # statistics per segment (docs/milvus.md): nothing approximate to measure here.
        lite = {"vector_search": "Milvus Lite FLAT (exact)", "ann_recall_at_10": None}
        return {**row, **lite, "bm25_agrees": None}
    qv = np.asarray(embedder.encode(asked), dtype=np.float32)
    agreed = bm25_agreement(bot, index, asked[:agree_on])
    return {
        **row,
        "vector_search": type(bot.index.faiss).__name__,
        "ann_recall_at_10": ann_recall(bot.index, qv),
        "bm25_agrees": agreed["agrees"],
        "bm25_checked": agreed,
    }


def bm25_agreement(bot, folder: str, asked: list[str], k: int = 10) -> dict:
    """Whether the keyword search's top k equals a plain BM25 computation, per question.

    The plain one is the Okapi formula in float64 straight from the stored term counts
    (bm25_tf.npy; each passage's length summed again from them), over the very terms a
    question's search sends (its words and character grams, each once). Equal means: the
    same k passages, or, where they differ, passages whose plain scores tie with the k-th
    (float32 rounding)."""
    from qa.index.bm25 import K1, B
    from qa.index.script import match_script
    from qa.stores.folder import read_index

    index = bot.index
    postings = read_index(Path(folder), ann=False).postings
    docs_of, tf_of, indptr = postings.docs, postings.tf, postings.indptr
    n = len(postings.lengths)
    # Each passage's length counted again from the postings, not taken from the index.
    lengths = np.bincount(docs_of, weights=tf_of.astype(np.float64), minlength=n)
    norm = K1 * (1 - B + B * lengths / lengths.mean())
    vocab = {t: i for i, t in enumerate(postings.vocab)}
    tokenizer = bot.searcher.tokenizer
    failed = []
    for q in asked:
        query = match_script(q, index.passages.char_df)
        terms = tokenizer.query_terms(query) + tokenizer.question_grams(query)
        exact = np.zeros(n)
        for t in {vocab[t] for t in terms if t in vocab}:
            docs = docs_of[indptr[t] : indptr[t + 1]]
            tf = tf_of[indptr[t] : indptr[t + 1]].astype(np.float64)
            idf = np.log(1 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            exact[docs] += idf * tf * (K1 + 1) / (tf + norm[docs])
        mine = index.keyword(terms, k)
        plain = _top(exact, k)
        kth = exact[plain[-1]] if len(plain) else 0.0
        if set(mine) != set(plain) and not np.allclose(
            exact[np.setdiff1d(mine, plain)], kth, rtol=1e-5
        ):
            failed.append(q)
    return {"questions": len(asked), "k": k, "disagree": failed, "agrees": not failed}


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    positive = np.flatnonzero(scores > 0)
    return positive[np.argsort(-scores[positive], kind="stable")[:k]]


def disk_mb(index: Path) -> float:
    return sum(p.stat().st_size for p in index.rglob("*") if p.is_file()) / 2**20


# -- the run -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--passages", type=int, required=True, help="how many passages to index")
    p.add_argument("--out", required=True, help="the JSON report")
    p.add_argument("--model", default="m3e-small", help="hash: no model (a smoke run)")
    p.add_argument("--backend", default=None, help="default: the Settings default")
    p.add_argument("--questions", type=int, default=200)
    p.add_argument("--work", default="/tmp/qa-scale", help="scratch folder (kept: the cache)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--store",
        choices=("folder", "milvus"),
        default="folder",
        help="milvus: a Milvus Lite file under --work instead of a folder",
    )
    args = p.parse_args(argv)

    import qa
    from qa.index.embed import backend_of, make_embedder

    began = time.perf_counter()
    settings = qa.Settings(model=args.model, progress=False, reader=None)
    backend = args.backend or settings.backend
    work = Path(args.work)
    corpus, folder = work / f"corpus-{args.passages}", work / f"{args.store}-{args.passages}"
    index = f"milvus://{folder}/index.db" if args.store == "milvus" else str(folder)

    print(f"[{_elapsed(began)}] sentences of the public sets ...")
    sentences, runs, titles = source_sentences()
    vectors = sentence_vectors(sentences, args.model, backend, work)
    backend = backend_of(make_embedder(args.model, 32, backend))
    articles = Articles(sentences, runs, titles, args.seed)
    records, parts = articles.make("a", passages=args.passages)
    stand_in = StandInEmbedder(args.model, backend, vectors, args.seed)
    stand_in.add(records, parts)
    write_corpus(corpus, records)
    print(f"[{_elapsed(began)}] qa build of {args.passages:,} passages ({len(records):,} articles)")
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t = time.perf_counter()
    stats = qa.build(corpus, index, settings, embedder=stand_in)
    build_s = time.perf_counter() - t - stand_in.seconds
    if stats.embedded != args.passages:
        raise SystemExit(f"expected {args.passages} passages, the build embedded {stats.embedded}")
    size = disk_mb(folder)
    _release(index)  # Milvus Lite opens a file in one process at a time
    build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"[{_elapsed(began)}] measuring in a fresh process ...")
    asked = questions()[: args.questions]
    row = in_fresh_process(measure, index, asked, min(100, len(asked)), args.model, backend)

    print(f"[{_elapsed(began)}] adding {REBUILD_ARTICLES:,} articles and building again ...")
    # What this benchmark holds of the corpus (~10 GB at a million passages) is not what a
    # user's `qa build` process holds: let it go, so the rebuild runs with the memory (and
    # page cache) a machine doing only `qa build` has. The kept passages' vectors come from
    # the index; only the new ones need the stand-in.
    n_articles = len(records)
    del records, parts
    stand_in.rows.clear()
    gc.collect()
    extra, extra_parts = articles.make("b", articles=REBUILD_ARTICLES)
    stand_in.add(extra, extra_parts)
    write_corpus_file(corpus / "added.jsonl", extra)
    stand_in.seconds = 0.0
    t = time.perf_counter()
    again = qa.build(corpus, index, settings, embedder=stand_in)
    rebuild_s = time.perf_counter() - t - stand_in.seconds

    report = {
        "passages": args.passages,
        "store": args.store,
        "articles": n_articles,
        "build_s": build_s,
        "build_peak_rss_mb": build_rss,
        "disk_mb": size,
        **{k: v for k, v in row.items() if k != "passages"},
        "rebuild_s": rebuild_s,
        "rebuild": {"added_articles": again.added, "embedded": again.embedded},
        "model": args.model,
        "backend": backend,
        "reader": "off (Settings(reader=None)): the same cost at any scale",
        "vectors": (
            f"stand-in: normalised sum of the real {args.model} ({backend}) vectors of the "
            f"passage's sentences + N(0, {NOISE}) per dimension; {len(sentences):,} distinct "
            "sentences embedded for real. Questions embedded by the real model."
        ),
        "notes": [
            f"Passages: real sentences of {', '.join(n for n in SOURCES if (DATA / n).is_file())}"
            f" recombined into paragraphs of at most {SYNTHETIC_CHARS} characters (one "
            "passage each), 2-5 per article; no two paragraphs equal (content hashes).",
            "build_s and rebuild_s exclude the stand-in embedding; keyword tokens, splitting, "
            "writing and the vector index are included.",
            "rss_mb: the whole process (model included) after load and the questions.",
            "build_peak_rss_mb: peak of the benchmark's own process, which makes the corpus "
            "and runs the first build (the stand-in vectors included).",
        ],
        "machine": machine(),
        "seconds": time.perf_counter() - began,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("machine", "bm25_checked")}))
    return report


def _release(index: str) -> None:
    if index.startswith("milvus"):
        from qa.stores.milvus import release

        release(index)


def write_corpus_file(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _elapsed(began: float) -> str:
    s = int(time.perf_counter() - began)
    return f"{s // 60:02d}:{s % 60:02d}"


if __name__ == "__main__":
    main(sys.argv[1:])
