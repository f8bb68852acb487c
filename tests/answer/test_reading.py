"""The reading step (qa/answer/reading.py, qa/answer/cite.py): the model file, its checks,
clauses of long sentences, and the switch that turns it off."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

import qa
from qa.answer import reading
from qa.answer.cite import LONG_SENTENCE, MIN_CLAUSE, READ_CANDIDATES, clause
from qa.answer.reading import SHIPPED, Reader, ReaderError, fp32_graph, load_reader

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def test_clause_of_a_long_sentence_holds_the_phrase_and_reads_as_a_clause():
    sentence = (
        "经审理查明,原告与被告于2015年3月签订房屋租赁合同,约定租期五年,月租金人民币八千元;"
        "合同履行期间,被告自2017年6月起拖欠租金共计人民币九万六千元,经原告多次催告仍未支付;"
        "原告遂诉至本院,请求判令解除合同并支付欠付租金及违约金。"
    )
    assert len(sentence) > LONG_SENTENCE // 2
    at = sentence.index("九万六千元")
    start, end = clause(sentence, at, at + 5)
    cited = sentence[start:end]
    assert "九万六千元" in cited and len(cited) >= MIN_CLAUSE
    assert cited.startswith("被告自2017年6月起") and cited.endswith("九万六千元")  # no comma
    # a phrase across clauses keeps both
    start, end = clause(sentence, sentence.index("月租金"), sentence.index("合同履行") + 2)
    assert "月租金" in sentence[start:end] and "合同履行" in sentence[start:end]


def test_clause_without_separators_is_the_whole_sentence():
    sentence = "甲" * 150
    assert clause(sentence, 10, 12) == (0, 150)


def _tiny_graph(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """x @ W as an int8 W behind a DequantizeLinear (per output channel), and W's floats."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    weight = rng.normal(size=(6, 4)).astype(np.float32)
    scale = (np.abs(weight).max(axis=0) / 127).astype(np.float32)
    q = np.round(weight / scale).astype(np.int8)
    graph = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", ["w_int8", "w_scale"], ["w"], axis=1),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(q, "w_int8"), numpy_helper.from_array(scale, "w_scale")],
    )
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path, q.astype(np.float32) * scale, weight


def test_int8_weights_are_folded_into_fp32_before_running(tmp_path):
    path, dequantised, weight = _tiny_graph(tmp_path)
    folded = onnx.load_from_string(fp32_graph(path))
    assert [n.op_type for n in folded.graph.node] == ["MatMul"]  # no int8 kernel left
    x = np.random.default_rng(4).normal(size=(3, 6)).astype(np.float32)
    (y,) = ort.InferenceSession(fp32_graph(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    np.testing.assert_allclose(y, x @ dequantised, rtol=1e-5, atol=1e-5)
    assert np.abs(y - x @ weight).max() < 0.05  # int8 per channel: close to the fp32 weights


def test_export_stores_large_weights_as_int8_per_channel(tmp_path, monkeypatch):
    export = pytest.importorskip("training.export")
    path, _, weight = _tiny_graph(tmp_path)
    from onnx import helper, numpy_helper

    plain = onnx.load(str(path))
    plain.graph.ClearField("node")
    plain.graph.node.append(helper.make_node("MatMul", ["x", "w"], ["y"]))
    plain.graph.ClearField("initializer")
    plain.graph.initializer.append(numpy_helper.from_array(weight, "w"))
    onnx.save(plain, str(tmp_path / "fp32.onnx"))
    monkeypatch.setattr(export, "MIN_WEIGHTS", 1)
    assert export.int8_weights(tmp_path / "fp32.onnx", tmp_path / "int8.onnx") == 1
    x = np.ones((1, 6), dtype=np.float32)
    session = ort.InferenceSession(
        fp32_graph(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"]
    )
    assert np.abs(session.run(None, {"x": x})[0] - x @ weight).max() < 0.05


def test_an_altered_or_missing_model_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(ReaderError, match="No usable reader model"):
        Reader(tmp_path)
    if not (SHIPPED / reading.MODEL_FILE).is_file():
        pytest.skip("no shipped reader")
    copy = tmp_path / "reader"
    shutil.copytree(SHIPPED, copy)
    with open(copy / reading.MODEL_FILE, "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\0" * 8)
    with pytest.raises(ReaderError, match="sha256"):
        Reader(copy)


def test_a_folder_named_explicitly_must_load_while_the_default_falls_back(
    tmp_path, monkeypatch, caplog
):
    with pytest.raises(ReaderError):
        load_reader(str(tmp_path / "nowhere"))
    monkeypatch.setattr(reading, "SHIPPED", tmp_path / "missing")
    monkeypatch.setattr(reading, "_loaded", {})
    with caplog.at_level(logging.WARNING, logger="qa"):
        assert load_reader("default") is None
    assert "without the reader" in caplog.text


@pytest.mark.parametrize("value", ["off", "OFF", "none", "0", ""])
def test_qa_reader_turns_it_on_or_off(monkeypatch, value):
    monkeypatch.setenv("QA_READER", value)
    assert qa.Settings().reader is None
    monkeypatch.setenv("QA_READER", "/some/folder")
    assert qa.Settings().reader == "/some/folder"
    for on in ("on", "default", "ON"):
        monkeypatch.setenv("QA_READER", on)
        assert qa.Settings().reader == "default"
    monkeypatch.delenv("QA_READER")
    assert qa.Settings().reader is None  # experimental: off unless asked for


def test_the_shipped_reader_reads_its_probes_as_fp32_did_on_this_machine():
    """Where this fails, the reader is wrong on this CPU: it must be fixed, not skipped."""
    if not (SHIPPED / reading.MODEL_FILE).is_file():
        pytest.fail("qa/models/reader holds no model: run `make -f training/Makefile reader`")
    reader = Reader(SHIPPED, check=False)
    fidelity = reader.check()
    assert fidelity.good, fidelity
    config = json.loads((SHIPPED / "reader.json").read_text(encoding="utf-8"))
    assert (SHIPPED / reading.MODEL_FILE).stat().st_size <= 30e6
    assert reading.sha256(SHIPPED / reading.MODEL_FILE) == config["export"]["sha256"]
    assert 0.0 < reader.threshold < 1.0


class ScriptedReader:
    """A stand-in for the model: scores and phrases chosen by the test, by sentence text."""

    def __init__(self, scores: dict[str, float], phrase: str = "", threshold: float = 0.1):
        self.scores, self.phrase, self.threshold = scores, phrase, threshold
        self.read_questions: list[tuple[str, int]] = []

    def read(self, question, candidates):
        self.read_questions.append((question, len(candidates)))
        out = []
        for _, sentence, _ in candidates:
            score = next((v for k, v in self.scores.items() if k in sentence), 0.01)
            at = sentence.find(self.phrase) if self.phrase else -1
            span = (at, at + len(self.phrase)) if at >= 0 else (0, 0)
            out.append(reading.Reading(score, *span))
        return out


@pytest.fixture
def reading_bot(_built_template):
    from tests.conftest import HASH

    return qa.load(_built_template / "index", HASH)


def test_the_reader_cites_one_sentence_with_its_phrase_where_its_offsets_say(reading_bot):
    reading_bot.reader = ScriptedReader({"6697项": 0.95}, phrase="6697项")
    answer = reading_bot.ask("赣服通集成了多少项服务?")
    assert answer.found and answer.phrase == "6697项"
    (c,) = answer.citations  # one sentence: the reader chose it
    paragraph = reading_bot.paragraph(c.article_id, c.paragraph)
    assert paragraph[c.phrase_start : c.phrase_end] == "6697项"
    assert c.start <= c.phrase_start < c.phrase_end <= c.end
    assert answer.text == f"{c.sentence}[1]" and c.sentence_start is None
    assert answer.to_dict()["phrase"] == "6697项"
    assert reading_bot.reader.read_questions[0][1] <= READ_CANDIDATES  # the best few only


def test_the_reader_refuses_when_no_candidate_scores_its_threshold(reading_bot):
    reading_bot.reader = ScriptedReader({}, threshold=0.5)  # every sentence 0.01
    answer = reading_bot.ask("赣服通集成了多少项服务?")
    assert not answer.found and answer.citations == () and answer.phrase == ""
    assert answer.text == qa.Assistant.__init__.__globals__["NOT_FOUND"]


def test_the_reader_overrides_the_pickers_order_only_when_much_surer(reading_bot):
    question = "赣服通集成了多少项服务?"
    reading_bot.reader = ScriptedReader({}, threshold=0.0)
    picked = reading_bot.ask(question).citations[0].sentence  # the picker's best (all 0.01)
    other = "李克强总理来到江西省社保中心"
    assert other not in picked
    reading_bot.reader = ScriptedReader({other: 0.99})  # far surer than of the picker's best
    assert other in reading_bot.ask(question).citations[0].sentence
    reading_bot.reader = ScriptedReader({picked[:8]: 0.5, other: 0.6})  # a little surer
    assert reading_bot.ask(question).citations[0].sentence == picked


def test_a_long_sentence_is_cited_by_the_clause_that_holds_the_phrase(tmp_path):
    from tests.conftest import HASH

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    long = (
        "经审理查明,原告与被告于2015年3月签订房屋租赁合同,约定租期五年,月租金人民币八千元;"
        "合同履行期间,被告自2017年6月起拖欠租金共计人民币九万六千元,经原告多次催告仍未支付;"
        "原告遂诉至本院,请求判令解除合同并支付欠付租金及违约金,本院依法适用普通程序公开开庭进行了审理。"
    )
    assert len(long) > LONG_SENTENCE
    (corpus / "判决.txt").write_text(
        f"租赁合同纠纷判决书\n\n本案由审判员独任审理。{long}\n", "utf-8"
    )
    qa.build(corpus, tmp_path / "index", HASH)
    bot = qa.load(tmp_path / "index", HASH)
    bot.reader = ScriptedReader({"九万六千元": 0.9}, phrase="九万六千元")
    answer = bot.ask("被告拖欠了多少租金?")
    (c,) = answer.citations
    assert "九万六千元" in c.sentence and len(c.sentence) < LONG_SENTENCE // 2
    paragraph = bot.paragraph(c.article_id, c.paragraph)
    assert long in paragraph[c.sentence_start : c.sentence_end]  # the whole sentence: context
    assert paragraph[c.start : c.end] == c.sentence and answer.text == f"{c.sentence}[1]"
