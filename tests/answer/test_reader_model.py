"""The same questions about the sample article as tests/answer/test_reader_questions.py, asked
with the shipped reader model on (QA_READER=on): which it answers from the right sentence,
which it refuses, and that its phrase is where its offsets say. Its misses are listed by
question (strict xfail), so the count is honest and a better model shows up as XPASS.
"""

from __future__ import annotations

import pytest
from test_reader_questions import OUT_OF_CORPUS, READER_QUESTIONS, SAME_SUBJECT

pytestmark = pytest.mark.model

# The shipped model's misses (training/README.md, "Figures"): 17 of 24 reader questions
# answered from the right sentence (19 without the reader), 6 of 11 same-subject refused
# (6 without), 8 of 8 off-topic refused.
READER_MISSES = {
    "湖北的政务服务平台叫什么?",
    "中西部省份拿什么条件吸引大平台企业落户?",
    "赣服通现在有多少人在用?",
    "赣服通依托的是哪家企业?",
    "华为在东莞拿了多大的单子?",
    "中部崛起最早是什么时候提出来的?",
    "政务服务往基层下沉的现象被称作什么效应?",
}
SAME_SUBJECT_ANSWERED = {
    "江西省长是谁?",
    "赣服通有多少名员工?",
    "李克强总理在江西待了几天?",
    "浙里办是哪一年上线的?",
    "数旗智酷的总部在哪个城市?",
}
OFF_TOPIC_ANSWERED: set[str] = set()


def _values(params) -> list:
    return [p.values if hasattr(p, "values") else p for p in params]


def _marked(rows, misses: set[str], reason: str) -> list:
    out = []
    for row in rows:
        question = row[0] if isinstance(row, tuple) else row
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if question in misses else []
        out.append(pytest.param(*(row if isinstance(row, tuple) else (row,)), marks=marks))
    return out


@pytest.mark.parametrize(
    ("question", "fragment"),
    _marked(_values(READER_QUESTIONS), READER_MISSES, "the reader refuses or cites another"),
)
def test_reader_question_is_answered_from_the_right_sentence(sample_reader_bot, question, fragment):
    answer = sample_reader_bot.ask(question)

    assert answer.found, question
    first = answer.citations[0]
    assert fragment in first.sentence
    paragraph = sample_reader_bot.paragraph(first.article_id, first.paragraph)
    assert paragraph[first.start : first.end] == first.sentence
    # the phrase: inside the cited text, where its offsets say
    assert answer.phrase and answer.phrase in first.sentence
    assert paragraph[first.phrase_start : first.phrase_end] == answer.phrase
    assert first.start <= first.phrase_start < first.phrase_end <= first.end


@pytest.mark.parametrize(
    "question",
    _marked(_values(SAME_SUBJECT), SAME_SUBJECT_ANSWERED, "on the subject, yet answered"),
)
def test_question_the_article_does_not_answer_is_refused(sample_reader_bot, question):
    assert not sample_reader_bot.ask(question).found


@pytest.mark.parametrize(
    "question", _marked(OUT_OF_CORPUS, OFF_TOPIC_ANSWERED, "off the subject, yet answered")
)
def test_question_about_another_subject_is_refused(sample_reader_bot, question):
    answer = sample_reader_bot.ask(question)
    assert not answer.found and answer.citations == () and answer.phrase == ""


def test_the_reader_loaded_and_passed_its_check_here(sample_reader_bot):
    """The figures above are the reader's: it loaded and read its probes as fp32 did."""
    assert sample_reader_bot.reader is not None
    assert sample_reader_bot.reader.fidelity is not None and sample_reader_bot.reader.fidelity.good
