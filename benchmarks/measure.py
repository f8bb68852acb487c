"""Measuring a built index in a fresh process: load time and memory, ANN recall. Shared by
benchmarks/scale.py (and open to bench.py's per-size measurement, which does the same)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from bench import rss_mb


def load_index(
    index: str, settings=None, wrap=None, model: str | None = None, backend=None
) -> dict:
    """`qa.load` of `index` timed, with the resident memory before and after it.

    The question embedder (the index's model, or `model` and `backend` for an index that is
    not a folder) is loaded and run once before the baseline: the model is not the index.
    `wrap(embedder)` may wrap it (to time it, say)."""
    import faiss  # noqa: F401  (imported before the baseline: it is not the index's memory)

    import qa
    from qa.index.embed import make_embedder
    from qa.stores.folder import read_manifest

    if model is None:
        manifest = read_manifest(Path(index))
        model, backend = manifest["model"], manifest.get("backend", "torch")
    embedder = make_embedder(model, 32, backend)
    embedder.encode(["预热"])
    if wrap is not None:
        embedder = wrap(embedder)
    base = rss_mb()
    began = time.perf_counter()
    bot = qa.load(index, settings, embedder=embedder)
    load_s = time.perf_counter() - began
    return {
        "bot": bot,
        "embedder": embedder,
        "load_s": load_s,
        "rss_base_mb": base,
        "rss_loaded_mb": rss_mb(),
    }


def ann_recall(index, qv: np.ndarray, k: int = 10) -> float | None:
    """Recall@k of the folder index's approximate dense search against exact search over
    the same stored vectors, for question vectors `qv`; None where search is exact."""
    if index.data.ann is None:
        return None
    vectors = index.data.vectors
    exact = np.empty((len(qv), k), dtype=np.int64)
    for lo in range(0, len(qv), 64):
        sims = np.concatenate(
            [
                qv[lo : lo + 64] @ vectors[r : r + 65536].T.astype(np.float32)
                for r in range(0, len(vectors), 65536)
            ],
            axis=1,
        )
        exact[lo : lo + 64] = np.argpartition(-sims, k, axis=1)[:, :k]
    found = [index.dense(v, k) for v in qv]  # what `search` starts from
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, found, strict=True)]))
