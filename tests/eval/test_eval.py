"""`qa eval` on a tiny SQuAD-format file."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import HASH

from qa.cli import main
from qa.errors import QAError
from qa.eval.evaluate import Question, Report, evaluate, same_subject_split, write_report

METRO = (
    "南昌地铁1号线于2015年12月26日开通试运营，是江西省第一条地铁线路。"
    "1号线全长28.8公里，共设24座车站，西起双港站，东至瑶湖西站。"
)
MARATHON = (
    "2019年南昌国际马拉松于11月10日在八一广场鸣枪开跑，共有3万名选手参赛。"
    "男子全程冠军由肯尼亚选手基普罗蒂奇获得，成绩为2小时11分。"
)


def squad(contexts: list[tuple[str, str, list[tuple[str, str]]]]) -> dict:
    """SQuAD JSON from (id, context, [(question, answer)])."""
    return {
        "version": "v1.0",
        "data": [
            {
                "title": "",
                "paragraphs": [
                    {
                        "id": cid,
                        "context": context,
                        "qas": [
                            {
                                "id": f"{cid}-q{n}",
                                "question": q,
                                "answers": [{"text": a, "answer_start": context.find(a)}],
                            }
                            for n, (q, a) in enumerate(qas)
                        ],
                    }
                    for cid, context, qas in contexts
                ],
            }
        ],
    }


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "dev.json"
    doc = squad(
        [
            (
                "metro",
                METRO,
                [("1号线共设多少座车站?", "24座"), ("1号线全长多少公里?", "28.8公里")],
            ),
            (
                "marathon",
                MARATHON,
                [("男子全程冠军是哪国选手?", "肯尼亚"), ("马拉松在哪里鸣枪开跑?", "八一广场")],
            ),
        ]
    )
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def negatives_file(tmp_path: Path) -> Path:
    path = tmp_path / "negatives.json"
    doc = squad(
        [
            (
                "duck",
                "北京烤鸭以果木挂炉烤制，皮脆肉嫩。",
                [("北京烤鸭怎么做?", "果木挂炉烤制"), ("量子计算机的原理是什么?", "量子")],
            )
        ]
    )
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


FRACTIONS = (
    "recall_at_1",
    "recall_at_5",
    "recall_at_10",
    "mrr_at_10",
    "sentence_hit_at_1",
    "sentence_hit_at_3",
    "answerable_abstained",
    "negatives_abstained",
)


def test_evaluate_reports_fractions_and_writes_json(data_file, negatives_file, tmp_path):
    report = evaluate(data_file, negatives_file, HASH)

    assert isinstance(report, Report)
    assert (report.model, report.articles, report.questions, report.negatives) == ("hash", 2, 4, 2)
    for name in FRACTIONS:
        assert 0.0 <= getattr(report, name) <= 1.0, name
    assert report.recall_at_1 <= report.recall_at_5 <= report.recall_at_10 == 1.0
    assert report.sentence_hit_at_1 <= report.sentence_hit_at_3
    assert report.negatives_abstained == 1.0  # nothing about roast duck in the two contexts
    assert 0 <= report.ask_p50_ms <= report.ask_p95_ms

    out = tmp_path / "report.json"
    write_report(report, out)
    assert json.loads(out.read_text(encoding="utf-8")) == asdict(report)


def test_evaluate_without_negatives_and_with_a_limit(data_file):
    report = evaluate(data_file, settings=HASH, limit=1)

    assert (report.questions, report.negatives, report.negatives_abstained) == (1, 0, None)
    assert "out-of-corpus abstained (0) -" in " ".join(report.table().split())


def test_evaluate_keeps_its_index_when_asked_and_reuses_it(data_file, tmp_path):
    index = tmp_path / "eval-index"
    first = evaluate(data_file, settings=HASH, index=index)
    assert (index / "manifest.json").is_file()

    again = evaluate(data_file, settings=HASH, index=index)
    assert again.recall_at_1 == first.recall_at_1
    assert again.sentence_hit_at_1 == first.sentence_hit_at_1


def test_same_subject_leaves_every_other_context_of_a_title_out():
    records = [
        {"id": f"{t}{n}", "title": t, "paragraphs": [f"{t} 第{n}段，数字{n}。"]}
        for t in ("甲", "乙")
        for n in range(3)
    ] + [{"id": "丙0", "title": "丙", "paragraphs": ["丙只有一段。"]}]
    questions = [Question(f"{r['id']}?", r["id"], (r["paragraphs"][0][2:5],)) for r in records]
    questions.append(Question("答案在别处?", "甲1", ("数字",)))  # also in 甲0: not unanswered

    kept, answerable, unanswered = same_subject_split(records, questions)

    assert [r["id"] for r in kept] == ["甲0", "甲2", "乙0", "乙2", "丙0"]
    assert [q.article_id for q in answerable] == ["甲0", "甲2", "乙0", "乙2", "丙0"]
    assert [q.question for q in unanswered] == ["甲1?", "乙1?"]


def test_same_subject_halves_every_other_title_with_one_context():
    records = [
        {
            "id": f"{t}",
            "title": t,
            "paragraphs": [f"{t}建于{t}1年。{t}长{t}2米。{t}有{t}3个门。{t}很美。"],
        }
        for t in ("甲", "乙", "丙")
    ]
    questions = [
        Question(f"{t}{n}?", t, (f"{t}{n}",)) for t in ("甲", "乙", "丙") for n in (1, 2, 3)
    ]

    kept, answerable, unanswered = same_subject_split(records, questions)

    assert [r["paragraphs"][0] for r in kept] == [
        records[0]["paragraphs"][0],
        "乙建于乙1年。乙长乙2米。",
        records[2]["paragraphs"][0],
    ]
    assert [q.question for q in unanswered] == ["乙3?"]
    assert [q.question for q in answerable] == [
        "甲1?",
        "甲2?",
        "甲3?",
        "乙1?",
        "乙2?",
        "丙1?",
        "丙2?",
        "丙3?",
    ]


def test_evaluate_same_subject_reports_the_left_out_questions(data_file):
    report = evaluate(data_file, settings=HASH, same_subject=True)

    # the two contexts share a title: the second is left out, its two questions unanswerable
    assert (report.articles, report.questions, report.same_subject) == (1, 2, 2)
    assert 0.0 <= report.same_subject_abstained <= 1.0
    assert "same-subject abstained (2)" in report.table()


def test_not_a_squad_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}), encoding="utf-8")

    with pytest.raises(QAError, match="not a readable SQuAD-format file"):
        evaluate(path, settings=HASH)


def test_cli_eval_prints_the_table_and_writes_the_report(
    capsys, data_file, negatives_file, tmp_path
):
    out_file = tmp_path / "qa-eval.json"

    code = main(
        [
            "eval",
            str(data_file),
            "--negatives",
            str(negatives_file),
            "--out",
            str(out_file),
            "--model",
            "hash",
        ]
    )
    out, _ = capsys.readouterr()

    assert code == 0
    for row in ("passage Recall@1", "passage MRR@10", "sentence Hit@1", "ask latency p95 (ms)"):
        assert row in out
    assert "out-of-corpus abstained (2)" in out
    assert f"written to {out_file}" in out
    saved = json.loads(out_file.read_text(encoding="utf-8"))
    assert saved["questions"] == 4 and saved["model"] == "hash"


def test_cli_eval_of_a_missing_file_is_one_line_error(capsys, tmp_path):
    code = main(["eval", str(tmp_path / "missing.json"), "--model", "hash"])
    _, err = capsys.readouterr()

    assert code == 2
    assert err.startswith("qa: error: ") and err.count("\n") == 1
    assert "missing.json" in err


def test_follow_ups_are_built_from_questions_naming_the_title_and_measured(tmp_path, capsys):
    from qa.eval.followups import rewrite

    assert rewrite("南昌地铁有多少座车站?", "南昌地铁", "pronoun") == "它有多少座车站?"
    assert rewrite("南昌地铁的终点是哪里?", "南昌地铁", "dropped") == "终点是哪里?"
    assert rewrite("马拉松冠军是谁?", "张三", "pronoun", person=True) == "马拉松冠军是谁?"
    doc = squad(
        [
            ("metro", METRO, [("南昌地铁1号线共设多少座车站?", "24座"),
                              ("南昌地铁1号线哪天开通试运营?", "2015年12月26日")]),
            ("marathon", MARATHON, [("南昌马拉松男子冠军是谁?", "基普罗蒂奇"),
                                    ("南昌马拉松有多少名选手参赛?", "3万名")]),
        ]
    )  # fmt: skip
    doc["data"] = [
        {"title": "南昌地铁", "paragraphs": doc["data"][0]["paragraphs"][:1]},
        {"title": "南昌马拉松", "paragraphs": doc["data"][0]["paragraphs"][1:]},
    ]
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    out_file = tmp_path / "follow.json"
    code = main(["eval", str(path), "--follow-ups", "--model", "hash", "--out", str(out_file)])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads(out_file.read_text())
    assert report["pairs"] == 4 and report["switches"] == 4
    assert "rewritten question after the first" in out and "topic switches" in out
    assert 0 <= report["follow_up_recall"] <= 1
