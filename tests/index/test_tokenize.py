"""qa/index/tokenize.py: the fast segmenter cuts exactly as jieba does; the dictionary cache."""

from __future__ import annotations

import random

import pytest

from qa.index import tokenize
from qa.index.tokenize import _WORD, Tokenizer

TEXTS = [
    "",
    " ",
    "\r\n\t",
    "江西省南昌市的赣服通集成了多少项服务?",
    "南昌地铁1号线于2015年12月26日开通试运营,全长28.8公里,共设24座车站。",
    "《战国无双3》（）是由光荣和ω-force开发的战国无双系列的正统第三续作。",
    "T恤 B超 X光 iPhone 12 Pro Max, ABC abc İstanbul ǅ",
    "a.b-c+d#e&f_g%h ...---+++ _ C++ C# .NET 3.5% 100%",
    "３.５ＡＢＣ ｆｕｌｌ-width 版本v1.2.3发布了 http://x.com/a?id=3&b=4",
    "学而时习之,不亦说乎?有朋自远方来,不亦乐乎?",
    "\u3400\u3401 𠀀 ㄅㄆ かな カナ 한국어 ΑΒΓ Ωmega Ⅻ ½ ①②",
    "12345678901234567890abcdefABCDEF",
    "Dr. Smith 说：“你好！”\n\t新行 ——“引号”‘单引号’【括号】",
    "臺灣的鐵路於1887年開始興建,劉銘傳主持。",
]


def _jieba_words(text: str) -> list[str]:
    """What Tokenizer.words returned before the fast segmenter: jieba's own cut."""
    return [w.lower() for w in tokenize._dictionary().lcut(text, HMM=False) if _WORD.search(w)]


def test_words_are_jiebas():
    t = Tokenizer()
    for text in TEXTS:
        assert t.words(text) == _jieba_words(text), text


def test_words_are_jiebas_on_random_text():
    # Random runs over a mix of what jieba treats differently: dictionary words, single
    # CJK characters, ASCII letters and digits it glues, symbols inside its runs, other
    # scripts and punctuation outside them.
    pieces = "".join(TEXTS) + "中华人民共和国北京大学生物化学研究所长江大桥" * 3 + "aZ09+#&._%-"
    rnd = random.Random(7)
    t = Tokenizer()
    for _ in range(400):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 40)))
        assert t.words(text) == _jieba_words(text), text


def test_grams_and_index_terms():
    t = Tokenizer()
    g = tokenize.GRAM
    expected = ["江", "西", "江西", "a", "b", "ab", "c"]
    assert t.grams("江西 AB,c") == [g + x for x in expected]
    text = TEXTS[4]
    assert t.index_terms(text) == t.terms(text) + t.grams(text)


@pytest.fixture
def fresh_dictionary(monkeypatch, tmp_path):
    """_dictionary() without its per-process memo, caching under a fresh QA_CACHE."""
    monkeypatch.setenv("QA_CACHE", str(tmp_path))
    return tokenize._dictionary.__wrapped__


@pytest.mark.slow
def test_dictionary_cache(fresh_dictionary):
    first = fresh_dictionary()  # jieba's own load, then the pickle is written
    cache = tokenize._dictionary_cache()
    assert cache.is_file()
    again = fresh_dictionary()  # from the pickle
    assert again.initialized and again.FREQ == first.FREQ and again.total == first.total
    cache.write_bytes(b"not a pickle")
    repaired = fresh_dictionary()  # damaged: jieba's way again, and the cache rewritten
    assert repaired.FREQ == first.FREQ and repaired.total == first.total
    assert fresh_dictionary().FREQ == first.FREQ


def test_words_among_are_the_wanted_words_of_the_whole_cut():
    # An answer asks which question terms are words of each candidate sentence, cutting only
    # the runs that hold one: the same set as cutting the sentence whole.
    pieces = "".join(TEXTS) + "中华人民共和国北京大学生物化学研究所长江大桥" * 3 + "aZ09+#&._%-"
    rnd = random.Random(11)
    t = Tokenizer()
    wanted = {"iphone", "pro", "t恤", "买了", "了"}
    assert t.words_among("买了 iPhone 12 Pro,T恤", wanted) == {"iphone", "pro", "t恤", "了"}
    vocabulary = sorted({w for text in TEXTS for w in t.words(text)})
    for _ in range(400):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 60)))
        wanted = set(rnd.sample(vocabulary, 6)) | set(rnd.sample(t.words(text) or ["x"], 1))
        wanted |= {"", "大学生", "c++", "学而"}  # empty, a word inside another, symbols
        assert t.words_among(text, wanted) == set(t.words(text)) & wanted, (text, wanted)


def test_words_among_text_whose_lower_case_is_not_its_characters_lower_cased():
    # words() lower-cases each character alone, str.lower() the text as a whole: a final Σ is
    # σ alone but ς at a word's end, so "ΑΣ".lower() holds no σ although words("ΑΣ") does.
    t = Tokenizer()
    for text in ("ΑΣ", "ΟΔΥΣΣΕΥΣ 奥德修斯", "İSTANBUL"):
        for word in set(t.words(text)) | {"ς", "i"}:
            assert t.words_among(text, {word}) == {word} & set(t.words(text)), (text, word)


def test_a_pair_gram_of_a_text_is_a_pair_of_word_characters_in_it():
    # What qa/answer/confidence.py relies on to find a question's pairs in a passage without
    # listing all of the passage's grams.
    pieces = "".join(TEXTS) + "中华人民共和国北京大学生物化学研究所长江大桥" * 3 + "aZ09+#&._%-İ"
    rnd = random.Random(5)
    t = Tokenizer()
    for _ in range(300):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 60))).lower()
        question = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 30)))
        pairs = {g for g in t.grams(question) if len(g) == 3}
        listed = {g for g in t.grams(text) if len(g) == 3}
        assert pairs & listed == {g for g in pairs if g[1:] in text}, (text, question)
