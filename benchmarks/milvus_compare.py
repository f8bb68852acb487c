"""The same `qa eval` on the folder (FAISS) index and on Milvus Lite, side by side, in one run.

    python benchmarks/milvus_compare.py [--limit N] [--out benchmarks/milvus_compare.json]

Both backends index the CMRC 2018 dev contexts with the same model and answer the same
questions (dev, plus trial questions as out-of-corpus negatives). Each build embeds its own
vectors, so build throughput compares like with like. Also prints what one passage costs in
Milvus (vector, text fields, BM25 terms), the figures docs/milvus.md sizes a cluster from.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "cmrc2018"


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def passage_sizes(uri: str) -> dict[str, float]:
    """Mean bytes per passage of each stored field, from the rows themselves."""
    from qa.stores.milvus import MilvusStore
    from qa.stores.milvus.schema import PASSAGES

    store = MilvusStore(uri)
    fields = ["pk", "article", "sentences", "key", "keywords", "vector", "sparse"]
    total: dict[str, float] = dict.fromkeys(fields, 0.0)
    n = 0
    for row in store.scan(PASSAGES, 'pk != ""', fields):
        n += 1
        for f in fields:
            value = row[f]
            if f == "vector":
                total[f] += 4 * len(value)  # float32
            elif f == "sparse":
                total[f] += 8 * len(value)  # (uint32 term, float32 weight) pairs
            else:
                total[f] += len(str(value).encode())
        total["ints"] = total.get("ints", 0.0) + 3 * 8  # paragraph, start, end
    paragraph_text = 0
    paragraphs = 0
    for row in store.scan("paragraphs", "number >= 0", ["text"]):
        paragraph_text += len(row["text"].encode())
        paragraphs += 1
    out = {f"chunk {k} (bytes)": v / max(n, 1) for k, v in total.items()}
    out["paragraph text (bytes)"] = paragraph_text / max(paragraphs, 1)
    out["passages"] = n
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA / "cmrc2018_dev.json"))
    p.add_argument("--negatives", default=str(DATA / "cmrc2018_trial.json"))
    p.add_argument("--limit", type=int, help="only the first N questions of each file")
    p.add_argument("--model", default=os.environ.get("QA_MODEL", "m3e-small"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "milvus_compare.json"))
    args = p.parse_args()

    import qa
    from qa.eval.evaluate import evaluate, read_squad
    from qa.stores.milvus import release

    settings = qa.Settings(model=args.model, progress=False)
    records, _ = read_squad(args.data)
    chars = sum(len(r["title"]) + sum(len(x) for x in r["paragraphs"]) for r in records)
    reports, sizes = {}, {}
    with tempfile.TemporaryDirectory(prefix="qa-milvus-compare-") as tmp:
        folder = Path(tmp) / "faiss"
        uri = f"milvus://{tmp}/milvus.db"
        for name, index in (("faiss", str(folder)), ("milvus-lite", uri)):
            print(f"-- {name}: building and asking ...", file=sys.stderr, flush=True)
            reports[name] = evaluate(
                args.data, args.negatives, settings, index=index, limit=args.limit
            )
        sizes["faiss folder (bytes)"] = folder_bytes(folder)
        sizes["milvus lite file (bytes)"] = folder_bytes(Path(tmp) / "milvus.db")
        per_passage = passage_sizes(uri)
        release(uri)  # stop the embedded server before its folder is removed

    rows = [
        ("passage Recall@1", "recall_at_1", "{:.4f}"),
        ("passage Recall@5", "recall_at_5", "{:.4f}"),
        ("passage MRR@10", "mrr_at_10", "{:.4f}"),
        ("sentence Hit@1", "sentence_hit_at_1", "{:.4f}"),
        ("sentence Hit@3", "sentence_hit_at_3", "{:.4f}"),
        ("answerable abstained", "answerable_abstained", "{:.4f}"),
        ("out-of-corpus abstained", "negatives_abstained", "{:.4f}"),
        ("ask latency p50 (ms)", "ask_p50_ms", "{:.1f}"),
        ("ask latency p95 (ms)", "ask_p95_ms", "{:.1f}"),
        ("index build (s)", "build_seconds", "{:.1f}"),
    ]
    f, m = reports["faiss"], reports["milvus-lite"]
    print(f"{f.questions} questions, {f.negatives} negatives, {f.articles} passages, {chars} chars")
    print(f"| {'figure':<24} | {'FAISS folder':>12} | {'Milvus Lite':>12} |")
    print(f"|{'-' * 26}|{'-' * 14}|{'-' * 14}|")
    for label, key, fmt in rows:
        a, b = getattr(f, key), getattr(m, key)
        print(f"| {label:<24} | {fmt.format(a):>12} | {fmt.format(b):>12} |")
    throughput = {k: chars / r.build_seconds for k, r in reports.items()}
    print(
        f"| {'build (chars/s)':<24} | {throughput['faiss']:>12.0f} | "
        f"{throughput['milvus-lite']:>12.0f} |"
    )
    for k, v in {**sizes, **per_passage}.items():
        print(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}")
    Path(args.out).write_text(
        json.dumps(
            {
                "reports": {k: asdict(r) for k, r in reports.items()},
                "build_chars_per_second": throughput,
                "corpus_chars": chars,
                "sizes": sizes,
                "per_passage": per_passage,
            },
            ensure_ascii=False,
            indent=2,
        )
        + "\n"
    )
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
