"""Speed and scale benchmark: prints a table and writes JSON. Not part of the test suite.

    python benchmarks/bench.py                  # the full run (about 15 minutes on 2 cores)
    python benchmarks/bench.py --quick          # a smoke run in about a minute
    python benchmarks/bench.py --model hash --quick --work /tmp/b   # no model at all

Every figure is measured in the same run as its reference:

- build: `qa build` of real CMRC 2018 contexts, against the raw `SentenceTransformer.encode`
  (fp32, torch) of the very texts the build embeds; the rest of the build is what is left
  of its wall time after embedding;
- per size (1k, 10k, 100k paragraphs): index load time and resident memory in a fresh
  process, `search` and `ask` latency (p50/p95) over CMRC questions, and the recall@10 of
  the approximate search against exact search over the same vectors;
- an incremental rebuild after changing one article of the 10k-paragraph index.

Embedding 100k paragraphs is hours on this machine, so the 10k and 100k corpora hold the
1k real contexts plus synthetic paragraphs: the first sentences of one real context joined
to the last sentences of another (real text, so keyword search works on real text), whose
vector is the normalised sum of those two contexts' real vectors plus a little noise.
Questions are always embedded by the real model.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "cmrc2018"
SYNTHETIC_CHARS = 470  # below the chunk size, so one synthetic paragraph is one vector
ARTICLES_PER_FILE = 1000


# -- machine and helpers ---------------------------------------------------------------


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    import faiss

    from qa.index.cpu import cpu_flags

    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "cpu_flags": list(cpu_flags()),
        "ram_mb": mem,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "onnxruntime": _version("onnxruntime"),
        "torch": _version("torch"),
        "platform": platform.platform(),
    }


def _version(distribution: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else 0.0


def norm_text(text: str) -> str:
    return re.sub(r"\s+", "", text)


def load_cmrc(limit: int) -> tuple[list[dict], list[tuple[str, str]]]:
    """Up to `limit` CMRC contexts (dev, then trial) and the questions about them."""
    from qa.eval.evaluate import read_squad

    records, questions = [], []
    for name in ("cmrc2018_dev.json", "cmrc2018_trial.json"):
        path = DATA / name
        if not path.is_file():
            continue
        recs, qs = read_squad(path)
        prefix = name.split("_")[1].split(".")[0]
        ids = {}
        for r in recs:
            if len(records) < limit:
                ids[r["id"]] = f"{prefix}-{r['id']}"
                records.append({**r, "id": ids[r["id"]]})
        questions += [(q.question, ids[q.article_id]) for q in qs if q.article_id in ids]
    if not records:
        raise SystemExit(f"No CMRC 2018 data at {DATA}: the benchmark needs its contexts.")
    return records, questions


def write_corpus(folder: Path, records: list[dict]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for n in range(0, len(records), ARTICLES_PER_FILE):
        with open(folder / f"part-{n // ARTICLES_PER_FILE:04d}.jsonl", "w", encoding="utf-8") as f:
            for r in records[n : n + ARTICLES_PER_FILE]:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


class TimedEmbedder:
    """Wraps an embedder and counts the time and characters it encodes."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.backend = getattr(inner, "backend", "torch")
        self.seconds = 0.0
        self.chars = 0
        self.texts = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts, *, progress=False):
        began = time.perf_counter()
        out = self.inner.encode(texts)
        self.seconds += time.perf_counter() - began
        self.chars += sum(map(len, texts))
        self.texts += len(texts)
        return out


class LookupEmbedder:
    """Known vectors for known texts (real or synthetic); anything else goes to `fallback`."""

    def __init__(self, name: str, backend: str, vectors: dict[str, np.ndarray], fallback):
        self.name = name
        self.backend = backend
        self.vectors = vectors
        self.fallback = fallback
        self.missed = 0
        self.fallback_seconds = 0.0

    @property
    def dim(self) -> int:
        return len(next(iter(self.vectors.values())))

    def encode(self, texts, *, progress=False):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        unknown = []
        for i, text in enumerate(texts):
            v = self.vectors.get(norm_text(text))
            if v is None:
                unknown.append(i)
            else:
                out[i] = v
        if unknown:
            began = time.perf_counter()
            out[unknown] = self.fallback.encode([texts[i] for i in unknown])
            self.fallback_seconds += time.perf_counter() - began
            self.missed += len(unknown)
        return out


# -- build throughput --------------------------------------------------------------------


def chunk_texts(corpus: Path, chunk_chars: int) -> list[str]:
    """The texts a build of `corpus` embeds, in build order."""
    from qa.index.split import split_passages
    from qa.read import read_corpus

    return [
        c.text
        for a in read_corpus(corpus).articles
        for p, text in enumerate(a.paragraphs)
        for c in split_passages(a.id, p, text, chunk_chars)
    ]


def raw_reference(model: str, texts: list[str], batch_size: int) -> dict:
    """The raw encode of `texts` by the model's own library, fp32 torch: the yardstick."""
    from qa.index.embed import HashEmbedder

    if model == "hash":
        encode = HashEmbedder().encode
        what = "HashEmbedder.encode"
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        from qa.config import resolve_model_path

        st = SentenceTransformer(resolve_model_path(model), device="cpu")
        st.encode(texts[:8], batch_size=batch_size)  # first-call costs are not throughput

        def encode(t):
            return st.encode(t, batch_size=batch_size, normalize_embeddings=True)

        what = f"SentenceTransformer.encode fp32 torch, batch {batch_size}"
    began = time.perf_counter()
    vectors = np.asarray(encode(texts), dtype=np.float32)
    seconds = time.perf_counter() - began
    chars = sum(map(len, texts))
    return {
        "what": what,
        "texts": len(texts),
        "chars": chars,
        "seconds": seconds,
        "chars_per_s": chars / seconds,
        "vectors": vectors,
    }


def bench_build(
    model: str, backend: str, corpus: Path, index: Path, reference: dict, settings
) -> dict:
    import qa
    from qa.index.embed import make_embedder
    from qa.stores.folder import read_index

    shutil.rmtree(index, ignore_errors=True)
    embedder = TimedEmbedder(make_embedder(model, settings.batch_size, backend))
    embedder.encode(["预热"])  # loading the model (or exporting it once) is not throughput
    embedder.seconds = embedder.chars = embedder.texts = 0
    # What computes the vectors: onnx-int8 falls back to fp32 where it fails its check.
    runtime = getattr(embedder.inner, "runtime", backend)
    fidelity = getattr(embedder.inner, "fidelity", None)
    began = time.perf_counter()
    stats = qa.build(corpus, index, settings, embedder=embedder)
    seconds = time.perf_counter() - began
    data = read_index(index, ann=False)
    ref = reference["vectors"]
    # The build's vectors in the reference's order, to compare them (same texts, same order).
    by_text = {}
    for i in range(len(data.passages)):
        by_text[data.passages.passage(i).text] = data.vectors[i].astype(np.float32)
    mine = np.stack([by_text[t] for t in reference["texts_list"]])
    cos = np.einsum("ij,ij->i", mine, ref)
    chars = embedder.chars
    return {
        "backend": backend,
        "runtime": runtime,
        "probe_fidelity": fidelity,
        "chunks": len(data.passages),
        "embedded": stats.embedded,
        "chars": chars,
        "seconds": seconds,
        "embed_seconds": embedder.seconds,
        "rest_seconds": seconds - embedder.seconds,
        "chars_per_s": chars / seconds,
        "ratio_to_raw_fp32": (chars / seconds) / reference["chars_per_s"],
        "cosine_to_fp32_mean": float(cos.mean()),
        "cosine_to_fp32_min": float(cos.min()),
    }


# -- synthetic corpora -------------------------------------------------------------------


def synthetic(records: list[dict], vectors: dict[str, np.ndarray], n: int, seed: int):
    """`n` paragraphs of real sentences mixed from two real contexts, with mixed vectors."""
    from qa.index.split import sentence_texts, split_sentences

    rng = np.random.default_rng(seed)
    contexts = [r["paragraphs"][0] for r in records]
    sentences = [sentence_texts(t, split_sentences(t)) for t in contexts]
    base = [vectors[norm_text(_first_chunk(t))] for t in contexts]
    out_records, out_vectors = [], {}
    made = 0
    while made < n:
        i, j = rng.integers(0, len(contexts), 2)
        if i == j or not sentences[i] or not sentences[j]:
            continue
        head = sentences[i][: max(1, len(sentences[i]) // 2)]
        tail = sentences[j][len(sentences[j]) // 2 :]
        text = "".join(head + tail)[:SYNTHETIC_CHARS]
        key = norm_text(text)
        if not key or key in out_vectors or key in vectors:
            continue
        noise = rng.normal(0, 0.02, base[i].shape).astype(np.float32)
        v = base[i] + base[j] + noise
        out_vectors[key] = v / np.linalg.norm(v)
        out_records.append(
            {"id": f"syn-{made}", "title": records[i]["title"], "paragraphs": [text]}
        )
        made += 1
    return out_records, out_vectors


def _first_chunk(text: str) -> str:
    from qa.index.split import split_passages

    return split_passages("x", 0, text, 480)[0].text


# -- per-size measurements (each in a fresh process) -------------------------------------


def measure_index(index: str, questions: list[tuple[str, str]], warm: int) -> dict:
    """Load time, memory, latencies and ANN recall of one index, in this (fresh) process."""
    import faiss  # noqa: F401  (imported before the baseline: it is not the index's memory)

    import qa
    from qa.index.embed import make_embedder
    from qa.stores.folder import read_manifest

    manifest = read_manifest(Path(index))
    embedder = make_embedder(manifest["model"], 32, manifest.get("backend", "torch"))
    embedder.encode(["预热"])  # the model is not the index: load it before the baseline
    base = rss_mb()
    began = time.perf_counter()
    bot = qa.load(index, embedder=embedder)
    load_s = time.perf_counter() - began
    loaded = rss_mb()
    for q, _ in questions[:warm]:
        bot.extractive(q)
    search, ask, hits = [], [], 0
    for q, gold in questions:
        t = time.perf_counter()
        bot.search(q, 10)
        search.append(time.perf_counter() - t)
        t = time.perf_counter()
        answer = bot.extractive(q)
        ask.append(time.perf_counter() - t)
        hits += bool(answer.passages) and answer.passages[0].article_id == gold
    qv = np.asarray(embedder.encode([q for q, _ in questions]), dtype=np.float32)
    index = bot.index  # a folder index (the benchmark builds folders)
    kind = type(index.faiss).__name__
    recall = None
    if index.data.ann is not None:
        vectors = index.data.vectors
        exact = np.empty((len(qv), 10), dtype=np.int64)
        for lo in range(0, len(qv), 64):
            sims = qv[lo : lo + 64] @ vectors.T.astype(np.float32)
            top = np.argpartition(-sims, 10, axis=1)[:, :10]
            exact[lo : lo + 64] = top
        found = [index.dense(v, 10) for v in qv]  # what `search` starts from
        recall = float(
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found, strict=True)])
        )
    return {
        "chunks": len(index.passages),
        "search_kind": kind,
        "load_s": load_s,
        "rss_index_mb": loaded - base,
        "rss_process_mb": rss_mb(),
        "search_p50_ms": pct(search, 50),
        "search_p95_ms": pct(search, 95),
        "ask_p50_ms": pct(ask, 50),
        "ask_p95_ms": pct(ask, 95),
        "questions": len(questions),
        "recall_at_1": hits / max(len(questions), 1),
        "ann_recall_at_10": recall,
    }


def in_fresh_process(fn, *args):
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


# -- the run -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, few questions")
    p.add_argument("--model", default="m3e-small")
    p.add_argument("--backends", help="comma-separated; default: torch and onnx-int8 if usable")
    p.add_argument("--sizes", help="paragraph counts, default 1000,10000,100000")
    p.add_argument("--questions", type=int, help="questions per size (default 300)")
    p.add_argument("--work", default="/tmp/qa-bench", help="scratch folder (emptied)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    args = p.parse_args(argv)

    import qa
    from qa.config import Settings

    began = time.perf_counter()
    sizes = [
        int(s)
        for s in (args.sizes or ("200,1000" if args.quick else "1000,10000,100000")).split(",")
    ]
    n_questions = args.questions or (20 if args.quick else 300)
    real = sizes[0]
    if args.backends:
        backends = args.backends.split(",")
    else:
        backends = ["torch"]
        if args.model != "hash" and _onnx_usable():
            backends.append("onnx-int8")
    settings = Settings(model=args.model, progress=False)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    records, questions = load_cmrc(real)
    questions = questions[:n_questions]
    real_corpus = work / f"corpus-{real}"
    write_corpus(real_corpus, records)
    texts = chunk_texts(real_corpus, settings.passage_chars)
    print(f"[{_elapsed(began)}] raw reference encode of {len(texts)} texts ...")
    reference = {**raw_reference(args.model, texts, settings.batch_size), "texts_list": texts}

    builds = []
    for backend in backends:
        print(f"[{_elapsed(began)}] qa build, {real} paragraphs, backend {backend} ...")
        index = work / f"index-{real}-{backend}"
        builds.append(bench_build(args.model, backend, real_corpus, index, reference, settings))
        print(f"  {_build_line(builds[-1])}")
    chosen = backends[-1]  # the fastest backend measured is what the large sizes use
    real_index = work / f"index-{real}-{chosen}"

    # Real vectors of every real chunk, by text, from the build of the chosen backend.
    from qa.stores.folder import read_index

    data = read_index(real_index, ann=False)
    vectors = {}
    for i in range(len(data.passages)):
        vectors[norm_text(data.passages.passage(i).text)] = data.vectors[i].astype(np.float32)

    from qa.index.embed import backend_of, make_embedder

    real_embedder = make_embedder(args.model, settings.batch_size, chosen)
    chosen = backend_of(real_embedder)
    results = []
    incremental = None
    synthetic_sizes = [s for s in sizes if s != real]
    inc_size = min(synthetic_sizes, key=lambda s: abs(s - 10_000), default=None)
    for size in sizes:
        if size == real:
            index = real_index
            build_s = None
        else:
            print(f"[{_elapsed(began)}] building {size} paragraphs (synthetic beyond {real}) ...")
            extra, extra_vectors = synthetic(records, vectors, size - real, seed=size)
            corpus = work / f"corpus-{size}"
            write_corpus(corpus, records + extra)
            index = work / f"index-{size}"
            lookup = LookupEmbedder(args.model, chosen, {**vectors, **extra_vectors}, real_embedder)
            t = time.perf_counter()
            qa.build(corpus, index, settings, embedder=lookup)
            build_s = time.perf_counter() - t
            if lookup.missed:
                print(f"  note: {lookup.missed} chunks had no stored vector and were embedded")
        print(f"[{_elapsed(began)}] measuring {size} paragraphs in a fresh process ...")
        row = in_fresh_process(measure_index, str(index), questions, 5)
        row.update(paragraphs=size, build_s_without_embedding=build_s)
        results.append(row)
        print(f"  {_size_line(row)}")
        if size == inc_size:
            known = {**vectors, **extra_vectors}
            incremental = bench_incremental(corpus, index, known, real_embedder, settings)
            print(f"  incremental rebuild: {incremental['seconds']:.2f} s")

    report = {
        "machine": machine(),
        "model": args.model,
        "default_backend": Settings(model=args.model).backend,
        "quick": args.quick,
        "reference": {k: v for k, v in reference.items() if k not in ("vectors", "texts_list")},
        "builds": builds,
        "sizes": results,
        "incremental": incremental,
        "notes": [
            f"Sizes above {real} paragraphs: the {real} real CMRC contexts plus synthetic "
            "paragraphs (first half of one real context's sentences + second half of another's; "
            "vector = normalised sum of the two real vectors + N(0, 0.02) noise). Keyword search "
            "runs on that real text; questions are embedded by the real model.",
            f"Large sizes reuse the vectors of the {chosen} build.",
        ],
        "seconds": time.perf_counter() - began,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    print()
    print(table(report))
    print(f"\nwrote {args.out} in {report['seconds']:.0f} s")
    return report


def bench_incremental(corpus, index, known, real_embedder, settings) -> dict:
    """Change one article of `corpus` and rebuild `index`: seconds, and how many embedded."""
    import qa

    first = sorted(corpus.glob("*.jsonl"))[0]
    lines = first.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    record["paragraphs"] = [record["paragraphs"][0] + "这一句是为测量增量重建而改动的。"]
    lines[0] = json.dumps(record, ensure_ascii=False)
    first.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from qa.index.embed import backend_of

    lookup = LookupEmbedder(real_embedder.name, backend_of(real_embedder), known, real_embedder)
    real_embedder.encode(["预热"])
    t = time.perf_counter()
    stats = qa.build(corpus, index, settings, embedder=lookup)
    seconds = time.perf_counter() - t
    return {
        "paragraphs": stats.paragraphs,
        "changed": stats.changed,
        "embedded": stats.embedded,
        "seconds": seconds,
        "embed_seconds": lookup.fallback_seconds,
        "rest_seconds": seconds - lookup.fallback_seconds,
    }


def _onnx_usable() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx"))


def _elapsed(began: float) -> str:
    s = int(time.perf_counter() - began)
    return f"{s // 60:02d}:{s % 60:02d}"


def _build_line(b: dict) -> str:
    fidelity = "" if b["probe_fidelity"] is None else f", probe fidelity {b['probe_fidelity']:.4f}"
    return (
        f"{b['backend']} (runs as {b['runtime']}{fidelity}): {b['chars_per_s']:,.0f} chars/s, "
        f"{b['ratio_to_raw_fp32']:.2f}x raw fp32, cosine to fp32 mean "
        f"{b['cosine_to_fp32_mean']:.4f} / min {b['cosine_to_fp32_min']:.4f}"
    )


def _size_line(r: dict) -> str:
    return (
        f"{r['paragraphs']} paragraphs: load {r['load_s']:.2f} s, "
        f"index RSS {r['rss_index_mb']:.0f} MB, "
        f"search p50 {r['search_p50_ms']:.1f} ms, ask p50 {r['ask_p50_ms']:.1f} ms"
    )


def table(report: dict) -> str:
    m = report["machine"]
    ref = report["reference"]
    lines = [
        f"Machine: {m['cores']} cores, {m['cpu']}, {m['ram_mb'] / 1024:.0f} GB RAM; "
        f"model {report['model']}",
        f"CPU flags: {' '.join(m.get('cpu_flags', [])) or '(unknown)'}; onnxruntime "
        f"{m.get('onnxruntime', '?')}, torch {m.get('torch', '?')}",
        "",
        f"Build of {ref['texts']} real CMRC passages ({ref['chars']:,} characters); "
        f"reference: {ref['what']} = {ref['chars_per_s']:,.0f} chars/s",
        "",
        "| backend | runs as | qa build chars/s | × raw fp32 | embedding s | rest of build s "
        "| cosine to fp32 (mean / min) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for b in report["builds"]:
        lines.append(
            f"| {b['backend']} | {b.get('runtime', b['backend'])} | {b['chars_per_s']:,.0f} | "
            f"{b['ratio_to_raw_fp32']:.2f} | "
            f"{b['embed_seconds']:.1f} | {b['rest_seconds']:.1f} | "
            f"{b['cosine_to_fp32_mean']:.4f} / {b['cosine_to_fp32_min']:.4f} |"
        )
    default = [b for b in report["builds"] if b["backend"] == report.get("default_backend")]
    if default:
        lines += ["", f"Default backend: {_build_line(default[0])}"]
    lines += [
        "",
        "| paragraphs | chunks | vector search | load s | index RSS MB | process RSS MB | "
        "search p50 / p95 ms | ask p50 / p95 ms | ANN recall@10 | Recall@1 |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["sizes"]:
        ann = "exact" if r["ann_recall_at_10"] is None else f"{r['ann_recall_at_10']:.4f}"
        lines.append(
            f"| {r['paragraphs']:,} | {r['chunks']:,} | {r['search_kind']} | {r['load_s']:.2f} | "
            f"{r['rss_index_mb']:.0f} | {r['rss_process_mb']:.0f} | "
            f"{r['search_p50_ms']:.1f} / {r['search_p95_ms']:.1f} | "
            f"{r['ask_p50_ms']:.1f} / {r['ask_p95_ms']:.1f} | {ann} | {r['recall_at_1']:.3f} |"
        )
    inc = report["incremental"]
    if inc:
        lines += [
            "",
            f"Incremental rebuild, one article changed in {inc['paragraphs']:,} paragraphs: "
            f"{inc['seconds']:.2f} s ({inc['embedded']} chunk(s) embedded in "
            f"{inc['embed_seconds']:.2f} s, the rest {inc['rest_seconds']:.2f} s)",
        ]
    lines += ["", *("Note: " + n for n in report["notes"])]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
