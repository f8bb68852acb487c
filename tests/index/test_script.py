"""Traditional-Chinese questions against a simplified corpus (and the reverse)."""

from __future__ import annotations

from conftest import ANSWERABLE

from qa.index.script import match_script


def test_traditional_characters_the_corpus_never_uses_are_simplified() -> None:
    known = set("赵匡胤是哪一年建立宋朝的")
    assert match_script("趙匡胤是哪一年建立宋朝的？", known) == "赵匡胤是哪一年建立宋朝的？"


def test_simplified_question_meets_a_traditional_corpus() -> None:
    known = set("趙匡胤是哪一年建立宋朝的")
    assert match_script("赵匡胤是哪一年建立宋朝的？", known) == "趙匡胤是哪一年建立宋朝的？"


def test_characters_the_corpus_uses_are_never_changed() -> None:
    # OpenCC turns 黄霑 into 黄沾; the articles write 霑, so the question must keep it.
    known = set("黄霑有哪些著名填词作品")
    assert match_script("黄霑有哪些著名填词作品？", known) == "黄霑有哪些著名填词作品？"


def test_traditional_question_gets_the_same_answer(bot) -> None:
    simplified = "赣服通集成了多少项服务?"
    traditional = "贛服通集成了多少項服務?"
    expected = bot.ask(simplified)
    answer = bot.ask(traditional)
    assert answer.found and answer.citations[0] == expected.citations[0]
    assert ANSWERABLE[simplified][1] in answer.citations[0].sentence
    assert answer.question == traditional  # shown as the user asked it
