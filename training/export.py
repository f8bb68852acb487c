"""Export a trained reader to ONNX (fp32), quantise it to int8, check the int8 graph here.

    python -m training.export DIR

Reads DIR/reader.pt and writes beside it model.onnx (fp32), model-int8.onnx with its
sha256 in model-int8.onnx.sha256, and this machine's fidelity record.

The int8 graph follows the embedder's recipe (qa/onnx.py QUANTISE: MatMul weights int8 per
channel in 7 bits, activations uint8 per call), so it behaves the same with or without VNNI.
That recipe leaves the embedding table in fp32 (21,128 x 512: 43 MB, over the 30 MB this
file may take), and quantising Gather with onnxruntime dequantises the whole table at every
call; so the table is exported already int8 with one scale per row, and only the rows a
sequence uses are turned back into floats.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from qa.index.onnx import OPSET, RECIPE, quantise
from training.reading import PROBES, machine_fidelity, measure_fidelity, run, session
from training.train import base_model

MAX_INT8_MB = 30


class Int8Embedding(torch.nn.Module):
    """An embedding table stored as int8 rows with one fp32 scale each."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
        self.register_buffer("table", torch.round(weight / scale).to(torch.int8))
        self.register_buffer("scale", scale)

    def forward(self, ids):
        return self.table[ids].to(torch.float32) * self.scale[ids]


def load_trained(folder: Path):
    model = base_model()
    model.load_state_dict(torch.load(folder / "reader.pt", map_location="cpu"))
    return model.eval()


def export_onnx(model, target: Path) -> None:
    ids = torch.ones((2, 16), dtype=torch.long)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    tokens = {0: "batch", 1: "tokens"}
    dynamic = {n: tokens for n in ("input_ids", "attention_mask", "token_type_ids", "start", "end")}
    dynamic["answerable"] = {0: "batch"}
    # The tracer warns about shape checks it freezes; with an attention mask they are constant.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(tmp),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["answerable", "start", "end"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    os.replace(tmp, target)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def latency_ms(folder: Path, name: str, max_len: int, runs: int = 50) -> float:
    """p50 of reading 5 candidates (PROBES' sentences) for one question, 2 threads."""
    from training.reading import load_tokenizer

    sess = session(folder / name, 2)
    tokenizer = load_tokenizer(folder)
    question = PROBES[0][0]
    candidates = [s for _, s, _ in PROBES[:5]]
    times = []
    for k in range(runs + 3):
        began = time.perf_counter()
        run(sess, tokenizer, max_len, question, candidates, candidates, candidates)
        if k >= 3:  # warm-up
            times.append(time.perf_counter() - began)
    return float(np.median(times) * 1000)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    folder = Path(args.folder)
    config = json.loads((folder / "reader.json").read_text(encoding="utf-8"))

    model = load_trained(folder)
    export_onnx(model, folder / "model.onnx")
    embeddings = model.encoder.embeddings
    embeddings.word_embeddings = Int8Embedding(embeddings.word_embeddings.weight.detach())
    staged = folder / "model-int8-table.onnx"
    export_onnx(model, staged)
    int8 = folder / "model-int8.onnx"
    quantise(staged, int8)
    staged.unlink()
    for extra in folder.glob("fidelity-*.json"):
        extra.unlink()  # records of the files just replaced

    size_mb = int8.stat().st_size / 1e6
    if size_mb > MAX_INT8_MB:
        raise SystemExit(f"model-int8.onnx is {size_mb:.1f} MB, over {MAX_INT8_MB} MB.")
    digest = sha256(int8)
    (folder / "model-int8.onnx.sha256").write_text(f"{digest}  model-int8.onnx\n")
    fidelity = measure_fidelity(folder)
    machine_fidelity(folder)  # writes this machine's record
    report = {
        "recipe": RECIPE + "; word embeddings int8 per row",
        "fp32_mb": round((folder / "model.onnx").stat().st_size / 1e6, 1),
        "int8_mb": round(size_mb, 1),
        "int8_sha256": digest,
        "fidelity": {
            "max_score_diff": round(fidelity.max_score_diff, 4),
            "score_correlation": round(fidelity.score_correlation, 4),
            "span_agreement": fidelity.span_agreement,
            "good": fidelity.good,
        },
        "latency_ms_5_pairs_p50": {
            "int8": round(latency_ms(folder, "model-int8.onnx", config["max_len"]), 1),
            "fp32": round(latency_ms(folder, "model.onnx", config["max_len"]), 1),
        },
    }
    config["export"] = report
    (folder / "reader.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
