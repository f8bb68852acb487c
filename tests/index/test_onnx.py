"""The ONNX backends: int8 vectors that are right on every CPU, checked on the machine that
runs them, with a fallback to the fp32 graph.

The fast tests use a tiny hand-made graph and tokenizer; the `model` tests export the real
m3e-small once per module.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="needs the fast extra (onnxruntime)")
onnx = pytest.importorskip("onnx", reason="needs the fast extra (onnx)")

from qa.index import onnx as qonnx  # noqa: E402
from qa.index.cpu import RELEVANT_FLAGS, cpu_flags  # noqa: E402

# -- a tiny stand-in model: two graphs whose output says which one ran ------------------


def write_graph(path: Path, row: list[float]) -> None:
    """A graph with the exported model's inputs whose output is `row` for every text."""
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"])
        for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["mask", "axis"], ["count"], keepdims=1),
        helper.make_node("Mul", ["count", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "row"], ["embedding"]),
    ]
    constants = [
        helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("zero", TensorProto.FLOAT, [1, len(row)], [0.0] * len(row)),
        helper.make_tensor("row", TensorProto.FLOAT, [1, len(row)], row),
    ]
    output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", len(row)])
    graph = helper.make_graph(nodes, "tiny", inputs, [output], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


FP32_ROW, INT8_ROW = [0.0, 1.0], [1.0, 0.0]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A model folder with a real tokenizer, exported and quantised into tiny graphs under a
    fresh QA_CACHE; `measured` counts fidelity measurements, whose mean the test sets."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    folder = tmp_path / "tiny-model"
    folder.mkdir()
    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "赣服通": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(qonnx, "_export", lambda source, target: write_graph(target, FP32_ROW))
    monkeypatch.setattr(qonnx, "quantise", lambda source, target: write_graph(target, INT8_ROW))

    class Measured:
        mean = 0.5
        calls = 0

    def measure(int8, tokenizer, threads):
        Measured.calls += 1
        return qonnx.Fidelity(Measured.mean, Measured.mean, cpu_flags(), "test")

    monkeypatch.setattr(qonnx, "measure_fidelity", measure)
    return folder, Measured


def test_int8_below_the_floor_falls_back_to_fp32_with_one_warning(tiny, caplog):
    folder, measured = tiny
    measured.mean = 0.81
    embedder = qonnx.OnnxEmbedder(str(folder), "onnx-int8")

    with caplog.at_level(logging.WARNING, logger="qa"):
        vectors = embedder.encode(["赣服通", "青花瓷"])
        embedder.encode(["再来一次"])

    assert vectors.tolist() == [FP32_ROW, FP32_ROW]  # computed by the fp32 graph
    assert (embedder.backend, embedder.runtime, embedder.fidelity) == ("onnx-int8", "onnx", 0.81)
    assert len(caplog.records) == 1
    assert "0.810" in caplog.text and "fp32" in caplog.text


def test_int8_above_the_floor_is_used_silently(tiny, caplog):
    folder, measured = tiny
    measured.mean = 0.997
    embedder = qonnx.OnnxEmbedder(str(folder), "onnx-int8")

    with caplog.at_level(logging.WARNING, logger="qa"):
        vectors = embedder.encode(["赣服通"])

    assert vectors.tolist() == [INT8_ROW]
    assert (embedder.runtime, embedder.fidelity) == ("onnx-int8", 0.997)
    assert caplog.records == []


def test_fidelity_is_measured_once_per_machine_and_again_on_another_cpu(tiny, monkeypatch):
    folder, measured = tiny
    measured.mean = 0.81
    assert qonnx.OnnxEmbedder(str(folder), "onnx-int8").runtime == "onnx"
    # A second process on the same machine reads the record instead of measuring.
    assert qonnx.OnnxEmbedder(str(folder), "onnx-int8").runtime == "onnx"
    assert measured.calls == 1

    # The same cache on a CPU with other flags (or a new onnxruntime) is checked again.
    measured.mean = 0.997
    monkeypatch.setattr(qonnx, "cpu_flags", lambda: ("avx2",))
    assert qonnx.OnnxEmbedder(str(folder), "onnx-int8").runtime == "onnx-int8"
    monkeypatch.setattr(qonnx, "_onnxruntime_version", lambda: "9.9.9")
    assert qonnx.OnnxEmbedder(str(folder), "onnx-int8").fidelity == 0.997
    assert measured.calls == 3


def test_the_fp32_backend_needs_no_check(tiny):
    folder, measured = tiny
    embedder = qonnx.OnnxEmbedder(str(folder), "onnx")

    assert embedder.encode(["赣服通"]).tolist() == [FP32_ROW]
    assert (embedder.runtime, embedder.fidelity, measured.calls) == ("onnx", 1.0, 0)


def test_the_cache_keys_change_with_whatever_changes_the_result(tiny, monkeypatch):
    folder, _ = tiny
    int8 = qonnx.onnx_file(str(folder), "onnx-int8")
    record = qonnx.fidelity_file(int8)

    monkeypatch.setattr(qonnx, "RECIPE", qonnx.RECIPE + " (changed)")
    assert qonnx.onnx_file(str(folder), "onnx-int8").name != int8.name
    monkeypatch.undo()
    monkeypatch.setattr(qonnx, "QUANTISE", {**qonnx.QUANTISE, "reduce_range": False})
    assert qonnx.int8_name() != int8.name
    monkeypatch.undo()
    assert qonnx.int8_name() == int8.name

    monkeypatch.setattr(qonnx, "cpu_flags", lambda: ("avx2", "fma"))
    assert qonnx.fidelity_file(int8) != record
    monkeypatch.undo()
    write_graph(int8, [0.6, 0.8])  # the int8 file itself changed
    assert qonnx.fidelity_file(int8) != record

    before = qonnx.export_folder(folder)
    (folder / "config.json").write_text("{}", encoding="utf-8")  # the model changed
    assert qonnx.export_folder(folder) != before


def test_cpu_flags_are_known_instruction_sets():
    flags = cpu_flags()

    assert isinstance(flags, tuple) and set(flags) <= set(RELEVANT_FLAGS)
    if Path("/proc/cpuinfo").is_file() and "avx2" in Path("/proc/cpuinfo").read_text():
        assert "avx2" in flags


# -- the real model ------------------------------------------------------------------


def saturating_u8s8_matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """uint8 (rows, K) times int8 (K, N) as x86 computes it without VNNI: vpmaddubsw adds
    each adjacent pair of products (k, k+1) into an int16 with saturation, vpmaddwd then
    adds those in int32."""
    a = a.astype(np.int32)
    w = w.astype(np.int32)
    if a.shape[1] % 2:
        a, w = np.pad(a, ((0, 0), (0, 1))), np.pad(w, ((0, 1), (0, 0)))
    out = np.empty((a.shape[0], w.shape[1]), dtype=np.int64)
    for lo in range(0, a.shape[0], 8):
        pairs = (
            a[lo : lo + 8, 0::2, None] * w[None, 0::2] + a[lo : lo + 8, 1::2, None] * w[None, 1::2]
        )
        out[lo : lo + 8] = np.clip(pairs, -32768, 32767).sum(axis=1)
    return out


def quantised_matmuls(
    path: Path, texts: list[str]
) -> list[tuple[str, np.ndarray, int, np.ndarray]]:
    """(node, uint8 activations (rows, K), their zero point, stored weights (K, N)) of every
    MatMulInteger of the quantised graph at `path`, the activations those of `texts`."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    weights = {i.name: i for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    wanted = sorted({name for n in nodes for name in n.input[0:3:2]})  # activations, zero points
    model.graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.UINT8, None) for name in wanted
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    tokenizer = qonnx._tokenizer("m3e-small")
    found: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    for text in texts:  # one at a time: no padding rows
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        feed["token_type_ids"] = np.zeros_like(ids)
        for name, value in zip(wanted, session.run(wanted, feed), strict=True):
            found[name].append(value.reshape(-1, value.shape[-1]) if value.ndim else value)
    return [
        (
            n.name,
            np.concatenate(found[n.input[0]]),
            int(found[n.input[2]][0]),  # per text; only the error message uses it
            numpy_helper.to_array(weights[n.input[1]]),
        )
        for n in nodes
    ]


def kernel_mismatches(path: Path) -> list[str]:
    """The MatMulIntegers whose int8 weights a CPU without VNNI multiplies wrongly (on the
    long probe paragraph and a question), with how wrong."""
    texts = [max(qonnx.PROBES, key=len), qonnx.PROBES[0]]
    found = []
    for name, a, zero, w in quantised_matmuls(path, texts):
        assert a.dtype == np.uint8 and w.ndim == 2
        if w.dtype == np.uint8:
            continue  # uint8 weights go to the u8u8 kernel, which widens to int16 first: exact
        exact = a.astype(np.float64) @ w.astype(np.float64)  # every sum is exact in float64
        emulated = saturating_u8s8_matmul(a, w)
        if not np.array_equal(emulated, exact.astype(np.int64)):
            # The kernel's raw sums; onnxruntime subtracts zero * column sums afterwards.
            true = exact - zero * w.astype(np.float64).sum(axis=0)
            error = np.abs(emulated - exact)
            found.append(
                f"{name}: {np.mean(error > 0):.2%} of outputs wrong, worst by "
                f"{error.max() / np.abs(true).max():.1%} of the largest output"
            )
    return found


needs_model = pytest.mark.model


@pytest.fixture(scope="module")
def int8_embedder(tmp_path_factory):
    """m3e-small as onnx-int8, exported into a fresh QA_CACHE kept for this module."""
    from qa.index.embed import make_embedder

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QA_CACHE", str(tmp_path_factory.mktemp("qa-cache")))
        embedder = make_embedder("m3e-small", backend="onnx-int8")
        embedder.encode(["预热"])  # export, quantise and check while QA_CACHE points there
        yield embedder


@needs_model
def test_onnx_int8_vectors_agree_with_sentence_transformers(int8_embedder):
    from qa.index.embed import make_embedder

    # Not the probes: what a user's index holds.
    texts = [
        "赣服通集成了6697项服务。",
        "南昌地铁1号线共设24座车站,全长28.8公里,西起双港站,东至瑶湖西站。",
        "青花瓷",
        "2019年南昌国际马拉松于11月10日在八一广场鸣枪开跑,共有3万名选手参赛。男子全程冠军由"
        "肯尼亚选手基普罗蒂奇获得,成绩为2小时11分。赛事路线经过滕王阁和秋水广场,沿途设有20个"
        "补给站和医疗点。",
        "量子计算机的原理是什么?",
    ]
    reference = make_embedder("m3e-small", backend="torch").encode(texts)
    fast = int8_embedder.encode(texts)

    assert fast.shape == reference.shape
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    cosines = np.einsum("ij,ij->i", fast, reference)
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.98, cosines
    # ... and they came from the int8 graph: the recipe is meant to hold on every CPU.
    assert (int8_embedder.runtime, int8_embedder.backend) == ("onnx-int8", "onnx-int8")
    assert int8_embedder.fidelity >= qonnx.FIDELITY_FLOOR


@needs_model
def test_int8_weights_cannot_overflow_the_kernel_of_cpus_without_vnni(int8_embedder):
    # This CPU may have VNNI (exact int32 sums): emulate the AVX2 kernel on the real weights.
    assert kernel_mismatches(qonnx.onnx_file("m3e-small", "onnx-int8")) == []


@needs_model
def test_the_emulation_catches_full_range_int8_weights(int8_embedder, tmp_path, monkeypatch):
    # The recipe before issue 9: without reduce_range, pairs of products overflow int16.
    fp32 = qonnx.onnx_file("m3e-small", "onnx")
    monkeypatch.setattr(qonnx, "QUANTISE", {**qonnx.QUANTISE, "reduce_range": False})
    old = tmp_path / "old-int8.onnx"
    qonnx.quantise(fp32, old)

    assert len(kernel_mismatches(old)) > 0


def test_records_are_json_a_person_can_read(tiny):
    folder, measured = tiny
    measured.mean = 0.9
    int8 = qonnx.onnx_file(str(folder), "onnx-int8")
    qonnx.OnnxEmbedder(str(folder), "onnx-int8").encode(["赣服通"])

    record = json.loads(qonnx.fidelity_file(int8).read_text(encoding="utf-8"))
    assert record["mean"] == 0.9 and record["recipe"] == qonnx.RECIPE
    assert record["cpu_flags"] == list(cpu_flags())
