"""The `qa` command, invoked as a user would: output, exit codes and one-line errors."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from conftest import PARAGRAPHS

import qa
from qa.answer.sentences import NOT_FOUND
from qa.cli import BUILD_NICE, main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str) -> None:
    assert code == 2
    assert err.startswith("qa: error: ")
    assert err.count("\n") == 1 and err.endswith("\n")
    assert "Traceback" not in err


def test_build_prints_what_it_did(capsys, corpus, tmp_path):
    index = tmp_path / "index"
    code, out, err = run(
        capsys, "build", "--corpus", str(corpus), "--index", str(index), "--model", "hash"
    )

    assert code == 0
    assert "4 articles (4 added, 0 changed, 0 removed, 0 unchanged)" in out
    assert f"embedded {PARAGRAPHS} passages" in out
    assert str(index) in out
    assert (index / "manifest.json").is_file()

    code, out, _ = run(
        capsys, "build", "--corpus", str(corpus), "--index", str(index), "--model", "hash"
    )
    assert code == 0
    assert "0 added, 0 changed, 0 removed, 4 unchanged" in out
    assert "embedded 0 passages" in out


def test_build_runs_below_normal_priority_unless_told(capsys, corpus, tmp_path, monkeypatch):
    # A served index keeps answering at full speed while `qa build` rebuilds it.
    asked = []
    monkeypatch.setattr(os, "nice", asked.append)
    argv = ("build", "--corpus", str(corpus), "--index", str(tmp_path / "i"), "--model", "hash")
    assert run(capsys, *argv)[0] == 0
    assert run(capsys, *argv, "--nice", "0")[0] == 0
    assert run(capsys, *argv, "--nice", "19")[0] == 0
    assert asked == [BUILD_NICE, 19]
    assert BUILD_NICE > 0


@pytest.mark.parametrize("nice", ["-5", "20", "1000"])
def test_build_refuses_a_priority_it_cannot_give(capsys, corpus, tmp_path, monkeypatch, nice):
    # --nice -5 asks for a higher priority, which qa build never takes: an error, not a build
    # at normal priority as if it had been heard; above 19 the system has no lower priority.
    asked = []
    monkeypatch.setattr(os, "nice", asked.append)
    argv = ["build", "--corpus", str(corpus), "--index", str(tmp_path / "i"), "--model", "hash"]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--nice", nice])
    assert exited.value.code == 2 and "between 0 and 19" in capsys.readouterr().err
    assert asked == [] and not (tmp_path / "i").exists()


def test_build_lists_skipped_files(capsys, corpus, tmp_path):
    (corpus / "broken.json").write_text("{不是JSON", encoding="utf-8")

    code, out, err = run(
        capsys, "build", "--corpus", str(corpus), "--index", str(tmp_path / "i"), "--model", "hash"
    )

    assert code == 0
    assert "skipped: broken.json" in err
    assert "4 articles" in out


def test_ask_prints_the_answer_and_numbered_sources(capsys, built_index):
    code, out, err = run(capsys, "ask", "赣服通集成了多少项服务?", "--index", str(built_index))

    assert code == 0
    answer, sources = out.split("\n\n", 1)
    assert "6697项服务" in answer and answer.rstrip().endswith("]")
    assert "[1]" in answer
    lines = sources.splitlines()
    assert lines[0].startswith("[1] 赣服通上线一周年 — ganfutong.txt, 第")
    assert "6697项服务" in lines[1]
    numbers = [line.split("]")[0] for line in lines if line.startswith("[")]
    assert numbers == [f"[{n}" for n in range(1, len(numbers) + 1)]
    assert f"[{len(numbers)}]" in answer


def test_ask_without_an_answer_says_so_and_exits_3(capsys, built_index):
    code, out, err = run(capsys, "ask", "北京烤鸭怎么做?", "--index", str(built_index))

    assert code == 3
    assert out.strip() == NOT_FOUND
    assert err == ""


def test_ask_json_is_valid_and_has_citations(capsys, built_index):
    code, out, _ = run(
        capsys, "ask", "地铁1号线共设多少座车站?", "--index", str(built_index), "--json"
    )

    assert code == 0
    answer = json.loads(out)
    assert answer["found"] is True
    assert answer["question"] == "地铁1号线共设多少座车站?"
    assert "24座车站" in answer["citations"][0]["sentence"]
    first = answer["citations"][0]
    assert {"article_id", "title", "paragraph", "sentence", "start", "end"} <= set(first)
    assert first["article_id"] == "metro.md"
    assert "[1]" in answer["text"]
    assert answer["passages"]


def test_search_prints_ranked_passages(capsys, built_index):
    code, out, _ = run(
        capsys, "search", "马拉松男子全程冠军是谁?", "--index", str(built_index), "-k", "3"
    )

    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 6  # a heading line and a text line per passage
    assert lines[0].startswith(" 1. ") and "marathon.txt" in lines[0]
    assert "基普罗蒂奇" in lines[1]
    assert lines[2].startswith(" 2. ") and lines[4].startswith(" 3. ")


def test_search_json(capsys, built_index):
    code, out, _ = run(capsys, "search", "景德镇", "--index", str(built_index), "--json", "-k", "2")

    assert code == 0
    passages = json.loads(out)
    assert len(passages) == 2
    assert passages[0]["article_id"] == "porcelain.txt"


def test_missing_index_is_one_line_error(capsys, tmp_path):
    code, out, err = run(capsys, "ask", "赣服通集成了多少项服务?", "--index", str(tmp_path / "no"))

    assert_one_line_error(code, err)
    assert "qa build" in err
    assert out == ""


@pytest.mark.parametrize("question", ["", "   ", "？？！"])
@pytest.mark.parametrize("command", ["ask", "search"])
def test_empty_question_is_one_line_error(capsys, built_index, command, question):
    code, out, err = run(capsys, command, question, "--index", str(built_index))

    assert_one_line_error(code, err)
    assert "question" in err
    assert out == ""


def test_empty_corpus_is_one_line_error(capsys, tmp_path):
    (tmp_path / "corpus").mkdir()

    code, out, err = run(
        capsys,
        "build",
        "--corpus",
        str(tmp_path / "corpus"),
        "--index",
        str(tmp_path / "index"),
        "--model",
        "hash",
    )

    assert_one_line_error(code, err)
    assert "No readable article" in err


def test_asking_with_another_model_is_one_line_error(capsys, built_index):
    code, _, err = run(
        capsys, "ask", "赣服通是什么?", "--index", str(built_index), "--model", "m3e-small"
    )

    assert_one_line_error(code, err)
    assert "qa build --model m3e-small" in err


def test_damaged_index_is_one_line_error(capsys, built_index):
    (built_index / "manifest.json").write_text("{", encoding="utf-8")

    code, _, err = run(capsys, "ask", "赣服通是什么?", "--index", str(built_index))

    assert_one_line_error(code, err)
    assert "qa build" in err


def test_real_process_missing_index_prints_one_line_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ask", "赣服通集成了多少项服务?", "--index", "nope"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("qa: error: No index at nope")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_model_and_backend_flags_become_settings(monkeypatch) -> None:
    from qa.cli import _settings, parser

    monkeypatch.delenv("QA_MODEL", raising=False)
    args = parser().parse_args(["build", "--model", "/models/x", "--backend", "torch"])
    assert (_settings(args).model, _settings(args).backend) == ("/models/x", "torch")
    monkeypatch.setenv("QA_BACKEND", "onnx")
    assert _settings(parser().parse_args(["build"])).backend == "onnx"


def test_ask_json_exits_3_when_nothing_is_found(capsys, built_index):
    code, out, _ = run(capsys, "ask", "北京烤鸭怎么做?", "--index", str(built_index), "--json")
    assert code == 3 and json.loads(out)["found"] is False


def test_search_needs_a_positive_k(capsys, built_index):
    with pytest.raises(SystemExit) as exited:
        main(["search", "赣服通", "--index", str(built_index), "-k", "0"])
    assert exited.value.code == 2 and "at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_a_model_that_is_not_installed_is_one_line_error(capsys, corpus, tmp_path):
    missing = str(tmp_path / "no-such-model")
    code, _, err = run(
        capsys,
        *("build", "--corpus", str(corpus), "--index", str(tmp_path / "i")),
        *("--model", missing, "--backend", "torch"),
    )
    # sentence-transformers may log a warning line of its own first; ours is the last line.
    last = err.splitlines()[-1] + "\n"
    assert_one_line_error(code, last)
    assert "could not be loaded" in last and "Traceback" not in err


def test_settings_without_a_model_open_an_index_of_any_model(built_index):
    bot = qa.load(built_index, qa.Settings(min_confidence=0.5))
    assert bot.info().model == "hash" and bot.settings.min_confidence == 0.5


def test_chat_answers_a_follow_up_about_the_earlier_subject(capsys, monkeypatch, built_index):
    import io

    lines = "赣服通集成了多少项服务?\n它有多少用户?\n/new\n它有多少用户?\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    code, out, err = run(capsys, "chat", "--index", str(built_index))
    assert code == 0, err
    turns = out.split("问: ")[1:]
    assert "6697项" in turns[0]
    assert "(按“赣服通有多少用户?”理解)" in turns[1] and "900万用户" in turns[1]
    assert "(新对话)" in turns[1]
    assert "按“" not in turns[2]  # after /new the pronoun has nothing to refer to


def test_qa_ask_prints_the_readers_phrase_first_on_its_own_line(capsys):
    from qa.cli import _print_answer

    citation = qa.Citation(
        "a.txt", "标题", 0, "集成了6697项服务。", 3, 14, 0.9, phrase_start=6, phrase_end=11
    )
    answer = qa.Answer(
        "集成了多少项服务?", "集成了6697项服务。[1]", True, (citation,), phrase="6697项"
    )
    _print_answer(answer)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["6697项", "集成了6697项服务。[1]"]
    _print_answer(dataclasses.replace(answer, phrase=""))  # no reader: the answer first
    assert capsys.readouterr().out.splitlines()[0] == "集成了6697项服务。[1]"
