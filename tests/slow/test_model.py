"""Integration tests with the real default model (m3e-small) on the sample corpus.

Slower (the model loads in seconds): run only these with `pytest -m model`, skip them
with `-m "not model"`.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.model


def cited_in_source(bot, answer) -> bool:
    return all(
        bot.paragraph(c.article_id, c.paragraph)[c.start : c.end] == c.sentence
        for c in answer.citations
    )


@pytest.mark.parametrize(
    ("question", "fragment"),
    [
        ("赣服通上线一周年有多少用户?", "900万"),
        ("赣服通集成了多少项服务?", "6697项"),
        ("中部崛起是哪一年首次提出的?", "2004年"),
    ],
)
def test_sample_question_is_answered_from_the_right_sentence(sample_bot, question, fragment):
    answer = sample_bot.ask(question)

    assert answer.found
    assert fragment in answer.citations[0].sentence
    assert "[1]" in answer.text
    assert cited_in_source(sample_bot, answer)


@pytest.mark.parametrize(
    "question", ["北京烤鸭怎么做?", "量子计算机的原理是什么?", "巴黎奥运会的吉祥物叫什么名字?"]
)
def test_out_of_corpus_question_is_not_found(sample_bot, question):
    answer = sample_bot.ask(question)

    assert not answer.found
    assert "资料中没有找到相关内容" in answer.text
    assert answer.citations == ()


def test_rephrased_question_is_still_found(sample_bot):
    # Same question as above without 上线一周年: jieba then cuts 赣服通有 as 赣服/通有.
    answer = sample_bot.ask("赣服通有多少用户?")

    assert answer.found


def test_search_ranks_the_answering_paragraph_first(sample_bot):
    top = sample_bot.search("赣服通集成了多少项服务?", k=3)[0]
    assert "6697项服务" in top.text


def test_index_records_the_real_model(sample_bot):
    assert sample_bot.info().model == "m3e-small"
    assert sample_bot.info().dim == 512
