"""The question as every way in takes it: checked for words, stripped and cut to one limit."""

from __future__ import annotations

import re

from ..errors import EmptyQuestionError

# Longer input is cut: a question, not a document. The one limit of a question's length:
# the app's box, its API, a conversation and the model's prompt take it from here.
MAX_QUESTION_CHARS = 1000
_HAS_TEXT = re.compile(r"\w")


def cut_question(question: str) -> str:
    """`question` as it is asked: stripped and cut to MAX_QUESTION_CHARS first, before anything
    reads it (jieba took 2 GB for a 10-million-character one)."""
    question = question.strip()[:MAX_QUESTION_CHARS]
    # A lone surrogate (JSON "\ud800" decodes to one) would crash tokenizers and models.
    return question.encode("utf-8", "replace").decode("utf-8").strip()


def check_question(question: str) -> str:
    """`cut_question`, or EmptyQuestionError for anything but a string with words in it."""
    if not isinstance(question, str) or not _HAS_TEXT.search(question):
        raise EmptyQuestionError(
            "The question is empty: type a question in words, e.g. 赣服通集成了多少项服务?"
        )
    return cut_question(question)
