"""Export a trained reader to the file the system reads: int8 weights, fp32 arithmetic.

    python -m training.export DIR [--ship qa/models/reader]

Reads DIR/reader.pt and writes DIR/model.onnx (fp32, for comparison; not shipped) and
DIR/model-int8.onnx, whose weights are int8 with one scale per output channel (MatMul) or
per row (embedding tables), each read through a DequantizeLinear that qa/answer/reading.py
folds back into fp32 on load. So the file is a quarter of fp32's size and the results do not
depend on a CPU's int8 kernels: the embedder's int8 recipe (int8 activations too) read the
probes differently from fp32 on this very machine. reader.json gets the file's sha256, the
fp32 model's readings of the probes (every machine compares itself with them on load), the
size, the threshold chosen on the held-out articles and the latency of one answer's reading.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from qa.answer.cite import READ_CANDIDATES
from qa.answer.reading import MODEL_FILE, PROBES, TRAINED_FILE, Reader, question_key, sha256
from qa.index.onnx import OPSET
from training.train import base_model

MAX_INT8_MB = 30
HEADS, HIDDEN = 8, 512  # m3e-small
ANSWERED = 0.98  # the threshold keeps this share of held-out answering sentences
MIN_WEIGHTS = 65536  # smaller tensors (biases, layer norms) stay fp32
TABLE_USERS = ("Gather", "EmbedLayerNormalization")  # tables: one scale per row
SHIPPED = ("reader.json", "tokenizer.json", MODEL_FILE, TRAINED_FILE)


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


def fuse(source: Path, target: Path) -> dict:
    """onnxruntime's BERT fusions (attention, layer norms, GELU): the same fp32 arithmetic in
    fewer, faster kernels (about a fifth less time here). Returns the fused operators."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(
        str(source), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN, opt_level=1
    )
    model.save_model_to_file(str(target))
    return {k: v for k, v in model.get_fused_operator_statistics().items() if v}


def int8_weights(source: Path, target: Path) -> int:
    """Every large 2-d fp32 weight of `source` stored as int8 + per-channel scales behind a
    DequantizeLinear (axis 0 for a Gather's table, 1 for a MatMul's weight). Returns how
    many tensors were converted."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    users: dict[str, str] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, node.op_type)
    kept, nodes, done = [], [], 0
    for tensor in graph.initializer:
        w = numpy_helper.to_array(tensor)
        if w.dtype != np.float32 or w.ndim != 2 or w.size < MIN_WEIGHTS:
            kept.append(tensor)
            continue
        axis = 0 if users.get(tensor.name) in TABLE_USERS else 1
        scale = np.abs(w).max(axis=1 - axis).clip(min=1e-12) / 127
        shaped = scale.reshape((-1, 1) if axis == 0 else (1, -1))
        q = np.clip(np.round(w / shaped), -127, 127).astype(np.int8)
        kept.append(numpy_helper.from_array(q, tensor.name + "_int8"))
        kept.append(numpy_helper.from_array(scale.astype(np.float32), tensor.name + "_scale"))
        nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [tensor.name + "_int8", tensor.name + "_scale"],
                [tensor.name],
                axis=axis,
            )
        )
        done += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)
    onnx.save(model, str(target))
    return done


def fp32_readings(folder: Path) -> list[list[float]]:
    """The fp32 graph's (score, start, end) for each probe."""
    import onnxruntime as ort

    from qa.answer.reading import batch_arrays, best_span, encode, load_tokenizer, sigmoid

    config = json.loads((folder / "reader.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer(folder)
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    out = []
    for question, sentence in PROBES:
        e = encode(tokenizer, question, sentence, "", "", config["max_len"])
        logit, start, end = sess.run(None, batch_arrays([e]))
        i, j = best_span(start[0], end[0], e)
        out.append([float(sigmoid(logit)[0]), e.offsets[i][0], e.offsets[j][1]])
    return out


def calibrate(reader: Reader, path: Path) -> dict:
    """The threshold that keeps ANSWERED of the held-out questions' answering sentences
    (train.py's calibration.jsonl), and what it does there: the share of the other
    sentences refused, how often a question's answering sentence scores best among its
    pairs, and the phrases' exact match and character F1."""
    from qa.eval.evaluate import phrase_scores

    by_question: dict[str, list[dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        by_question.setdefault(pair["qid"], []).append(pair)
    positives, negatives, best, phrases = [], [], [], []
    for pairs in by_question.values():
        question = pairs[0]["question"]
        readings = reader.read(question, [(p["before"], p["sentence"], p["after"]) for p in pairs])
        for p, r in zip(pairs, readings, strict=True):
            if p["label"]:
                positives.append(r.score)
                answer = p["sentence"][p["start"] : p["end"]]
                phrases.append(phrase_scores(p["sentence"][r.start : r.end], (answer,)))
            else:
                negatives.append(r.score)
        top = max(range(len(pairs)), key=lambda k: readings[k].score)
        best.append(pairs[top]["label"] == 1)
    threshold = float(np.quantile(positives, 1 - ANSWERED))
    return {
        "threshold": round(threshold, 4),
        "questions": len(by_question),
        "answering_kept": ANSWERED,
        "others_refused": round(float(np.mean(np.asarray(negatives) < threshold)), 4),
        "answering_scores_best": round(float(np.mean(best)), 4),
        "phrase_exact": round(float(np.mean([e for e, _ in phrases])), 4),
        "phrase_f1": round(float(np.mean([f for _, f in phrases])), 4),
    }


def latency_ms(reader: Reader, runs: int = 50) -> float:
    """p50 of reading as many candidates as an answer does (PROBES' sentences, with
    neighbours) for one question."""
    question = PROBES[0][0]
    sentences = [s for _, s in PROBES[:READ_CANDIDATES]]
    candidates = [(s, s, s) for s in sentences]
    times = []
    for k in range(runs + 3):
        began = time.perf_counter()
        reader.read(question, candidates)
        if k >= 3:  # warm-up
            times.append(time.perf_counter() - began)
    return float(np.median(times) * 1000)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--ship", help="copy the shipped files here (qa/models/reader)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    folder = Path(args.folder)
    config = json.loads((folder / "reader.json").read_text(encoding="utf-8"))

    # What qa eval checks its questions against: hashes of the normalised training questions.
    seen = json.loads((folder / "questions.json").read_text(encoding="utf-8"))["texts"]
    keys = {"question_keys": sorted(question_key(text) for text in seen)}
    (folder / TRAINED_FILE).write_text(json.dumps(keys) + "\n", encoding="utf-8")
    export_onnx(load_trained(folder), folder / "model.onnx")
    fused = fuse(folder / "model.onnx", folder / "model-fused.onnx")
    converted = int8_weights(folder / "model-fused.onnx", folder / MODEL_FILE)
    (folder / "model-fused.onnx").unlink()
    size_mb = (folder / MODEL_FILE).stat().st_size / 1e6
    if size_mb > MAX_INT8_MB:
        raise SystemExit(f"{MODEL_FILE} is {size_mb:.1f} MB, over {MAX_INT8_MB} MB.")
    config["export"] = {
        "recipe": "int8 weights per output channel / table row, fp32 arithmetic",
        "fused": fused,
        "int8_tensors": converted,
        "fp32_mb": round((folder / "model.onnx").stat().st_size / 1e6, 1),
        "int8_mb": round(size_mb, 1),
        "sha256": sha256(folder / MODEL_FILE),
    }
    (folder / "reader.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    config["export"]["probes"] = fp32_readings(folder)
    (folder / "reader.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")

    reader = Reader(folder, check=False)
    fidelity = reader.check()
    config["export"]["fidelity"] = {
        "max_score_diff": round(fidelity.max_score_diff, 4),
        "phrases_agree": fidelity.phrases_agree,
    }
    config["export"][f"latency_ms_{READ_CANDIDATES}_pairs_p50"] = round(latency_ms(reader), 1)
    if (folder / "calibration.jsonl").is_file():
        config["calibration"] = calibrate(reader, folder / "calibration.jsonl")
        config["threshold"] = config["calibration"]["threshold"]
    (folder / "reader.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: config.get(k) for k in ("export", "calibration")}, indent=1))
    if args.ship:
        ship = Path(args.ship)
        ship.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED:
            shutil.copy(folder / name, ship / name)
        print(f"copied {', '.join(SHIPPED)} to {ship}")


if __name__ == "__main__":
    main()
