"""Which approximate vector search holds at a given size: measured on scale.py's stand-in
passage vectors (no text, no build) with real question vectors.

    python benchmarks/ann_choice.py --passages 1000000 --out /tmp/ann-1m.json

For each candidate (the 8-bit full scan in use up to now; IVF with 8-bit codes at several
list counts and probes), the same rescoring the folder index does (the best RESCORE x k
re-scored on float16 vectors), recall@10 against exact search on the same float16 vectors,
search latency on one thread, and the seconds to train and fill it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import Articles, questions, sentence_vectors, source_sentences  # noqa: E402


def stand_in_vectors(passages: int, model: str, backend: str, work: Path, seed: int):
    """The stand-in vectors scale.py gives `passages` passages (float16, unit length)."""
    from scale import NOISE

    sentences, runs, titles = source_sentences()
    base = sentence_vectors(sentences, model, backend, work)
    _, parts = Articles(sentences, runs, titles, seed).make("a", passages=passages)
    rng = np.random.default_rng(seed)
    out = np.empty((len(parts), base.shape[1]), dtype=np.float16)
    for lo in range(0, len(parts), 50_000):
        chunk = parts[lo : lo + 50_000]
        v = np.stack([base[ids].sum(axis=0) for ids in chunk])
        v += rng.normal(0, NOISE, v.shape).astype(np.float32)
        out[lo : lo + len(chunk)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def exact_top(vectors: np.ndarray, qv: np.ndarray, k: int) -> np.ndarray:
    sims = np.concatenate(
        [qv @ vectors[r : r + 65536].T.astype(np.float32) for r in range(0, len(vectors), 65536)],
        axis=1,
    )
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    return top


def measure(index, vectors: np.ndarray, qv: np.ndarray, exact: np.ndarray, k: int, rescore: int):
    import faiss

    faiss.omp_set_num_threads(1)
    found, times = [], []
    for q in qv:
        t = time.perf_counter()
        _, ids = index.search(q.reshape(1, -1), rescore * k)
        ids = ids[0][ids[0] >= 0]
        sims = vectors[ids].astype(np.float32) @ q
        found.append(ids[np.argsort(-sims, kind="stable")[:k]])
        times.append(time.perf_counter() - t)
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, found, strict=True)])
    return (
        float(recall),
        float(np.percentile(times, 50) * 1000),
        float(np.percentile(times, 95) * 1000),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--passages", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="m3e-small")
    p.add_argument("--backend", default="onnx-int8")
    p.add_argument("--work", default="/tmp/qa-scale")
    p.add_argument("--lists", default="", help="comma-separated IVF list counts (default: by size)")
    p.add_argument("--probes", default="8,16,32,64")
    p.add_argument("--questions", type=int, default=200)
    args = p.parse_args(argv)
    import faiss

    from qa.index.embed import make_embedder

    work = Path(args.work)
    t = time.perf_counter()
    vectors = stand_in_vectors(args.passages, args.model, args.backend, work, seed=0)
    print(f"{len(vectors):,} stand-in vectors in {time.perf_counter() - t:.0f} s")
    embedder = make_embedder(args.model, 32, args.backend)
    qv = np.asarray(embedder.encode(questions()[: args.questions]), dtype=np.float32)
    k, rescore = 10, 5
    exact = exact_top(vectors, qv, k)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    d = x.shape[1]
    rows = []

    t = time.perf_counter()
    flat = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    flat.train(x)
    flat.add(x)
    made = time.perf_counter() - t
    r, p50, p95 = measure(flat, vectors, qv, exact, k, rescore)
    rows.append(
        {"index": "SQ8 full scan", "recall_at_10": r, "p50_ms": p50, "p95_ms": p95, "build_s": made}
    )
    print(rows[-1])
    n = len(vectors)
    lists = [int(s) for s in args.lists.split(",") if s] or [
        int(2 ** round(np.log2(np.sqrt(n)))),
        int(2 ** round(np.log2(4 * np.sqrt(n)))),
    ]
    for nlist in lists:
        faiss.omp_set_num_threads(2)
        t = time.perf_counter()
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        sample = x[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)]
        ivf.train(sample)
        trained = time.perf_counter() - t
        ivf.add(x)
        made = time.perf_counter() - t
        for nprobe in [int(s) for s in args.probes.split(",")]:
            ivf.nprobe = nprobe
            r, p50, p95 = measure(ivf, vectors, qv, exact, k, rescore)
            rows.append(
                {
                    "index": f"IVF{nlist},SQ8 nprobe {nprobe}",
                    "recall_at_10": r,
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "train_s": trained,
                    "build_s": made,
                }
            )
            print(rows[-1])
    report = {"passages": n, "questions": len(qv), "k": k, "rescore": rescore, "rows": rows}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
