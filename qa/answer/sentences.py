"""Which sentences answer a question: the signals each candidate sentence is scored by.

Sentence choice scores every sentence of the best passages by a few general signals:

- character coverage: the share of the question's characters (weighted by rarity) that the
  sentence contains. Characters the question shares with the article *title* are weighted
  down: they say which article, not which sentence (0.69 -> 0.80 Hit@1 on their own);
- local coverage: the same, with rarity counted among the candidate sentences themselves, so a
  character every candidate holds says nothing;
- word coverage: the same with jieba words;
- the words around the asking word: 东至__ for 最东可到达哪一个山脉, found in the sentence;
- answer type: 多少/几 wants a number, 哪一年/何时 a date, 谁 a person, 哪里 a place;
- the retrieval score of the sentence's passage, and sentence length.

The weights are those of a conditional logit over these features fitted on the CMRC trial
set and judged on CMRC dev and DRCD dev (docs/how-it-works.md, "Choosing sentences").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..index.script import simplified
from ..index.tokenize import QUESTION_WORDS, Tokenizer
from ..types import Sentence

TITLE_WEIGHT = 0.2  # weight of a question term that also appears in the article title
WEIGHTS = {
    "chars": 2.69,
    "local": 2.70,
    "words": 3.47,
    "sides": 1.23,
    "type": 1.82,
    "passage": 4.65,
    "length": -0.72,
}
NOT_FOUND = "资料中没有找到相关内容。"

_NON_WORD = re.compile(r"[\W_]+")
_QUESTION_CHARS = re.compile("|".join(sorted(QUESTION_WORDS, key=len, reverse=True)))
# The word that asks, for the words around it (the answer usually sits between them).
_ASKING = re.compile(
    r"哪一?[个些里儿年天国位种家所部条]?|什么[时候地方人样]*|多少|"
    r"几(?!乎)[个次种年名位人座项部条岁家所件]?|谁|(?<![任如为])何[时地种处]?|怎么|怎样|如何|为什么|为何"
)
SIDE_CHARS = 4  # characters of context on each side of the asking word
# A cited sentence that opens by pointing back (这一年, 他, 此地, 后来 ...) is cited together with
# the sentence before it; a next sentence that opens this way is cited with it too
# (docs/how-it-works.md, "Concise answers"). Matched on the first characters; openings that
# only look like one (其实, 其他, 此外 ...) are excluded.
POINTS_BACK = re.compile(
    r"^[「“\"『]?(?!其[实他余它次]|此外|这样一来)"
    r"(?:这|此|该|其|他|她|它|那[一个时年些]|同年|次年|翌年|当年|是年|当时|此时|这时|随后|其后"
    r"|后来|之后|此后|不久)"
)
_NUMBER = re.compile(
    r"[0-9０-９]|[一二三四五六七八九十两百千万亿]+[个年月日次种名位人座项部条岁米里吨元倍届分件家所只张]"
)
_DATE = re.compile(
    r"[0-9０-９一二三四五六七八九十〇零]+\s*(?:年|月|日|世纪|年代)|[春夏秋冬][季天]|朝|时期"
)


_CHEAP_TYPES = ("number", "date")  # told by a regular expression, no tagging needed


@dataclass(frozen=True)
class SentenceSignals:
    """The candidate sentences of one question, with the signals each is scored by (named
    as in WEIGHTS)."""

    sentences: tuple[Sentence, ...]
    signals: tuple[dict[str, float], ...]


@dataclass(frozen=True)
class Candidate:
    """A sentence that might answer: where it is, and its score."""

    row: int
    start: int  # offsets into the paragraph
    end: int
    text: str
    score: float


def answer_type(question: str) -> str | None:
    """What kind of answer the question asks for: date, number, person, place or None."""
    question = simplified(question)
    if re.search(
        r"哪一?年|何时|什么时[候间]|哪一?天|几月|几号|日期|年份|时间|哪个朝代|哪个时期", question
    ):
        return "date"
    if re.search(r"多少|几[个次种年名位人座项部条岁家所件]?|多[长高大远重久宽深]", question):
        return "number"
    if re.search(r"谁|哪位|什么人|哪个人", question):
        return "person"
    if re.search(r"哪里|何地|哪儿|什么地方|哪个(?:国家|城市|省|地区|地方)|哪国|位于", question):
        return "place"
    return None


def cheap_answer_type(question: str) -> str | None:
    """ "number" or "date" when the question asks for one: told without tagging."""
    wanted = answer_type(question)
    return wanted if wanted in _CHEAP_TYPES else None


def question_chars(question: str) -> set[str]:
    """Characters of the question that can match, without the words that only ask."""
    return set(_NON_WORD.sub("", _masked(question.lower(), _QUESTION_CHARS)))


def asking_sides(question: str) -> tuple[str, str]:
    """The words just before and just after the word that asks (哪一年, 谁 ...), or ("", "")."""
    question = question.lower()
    match = _ASKING.search(simplified(question))
    if not match:
        return "", ""
    before = _NON_WORD.sub("", question[: match.start()])[-SIDE_CHARS:]
    after = _NON_WORD.sub("", question[match.end() :])[:SIDE_CHARS]
    return before, after


def points_back(sentence: str) -> bool:
    """Does the sentence open with a back-reference (这一年, 他, 此地 ...)?"""
    return bool(POINTS_BACK.search(simplified(sentence[:4])))


def _masked(text: str, words: re.Pattern) -> str:
    """`text` with what `words` matches in its simplified form blanked out."""
    spans = [m.span() for m in words.finditer(simplified(text))]
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _sides_found(before: str, after: str, sentence: str) -> float:
    """How much of the words around the asking word the sentence holds, 0..1: the longest
    end of `before` and the longest start of `after` that occur in it."""
    if not before and not after:
        return 0.0
    k = 0
    while k < len(before) and before[len(before) - k - 1 :] in sentence:
        k += 1
    m = 0
    while m < len(after) and after[: m + 1] in sentence:
        m += 1
    return (k + m) / (len(before) + len(after))


class SentencePicker:
    """Scores candidate sentences; holds the corpus statistics it needs."""

    def __init__(self, tokenizer: Tokenizer, char_df: dict[str, int], passages: int, word_idf):
        self.tokenizer = tokenizer
        self.char_df = char_df
        self.passages = max(passages, 1)
        self.word_idf = word_idf

    def char_idf(self, char: str) -> float:
        df = self.char_df.get(char, 0)
        return math.log1p((self.passages - df + 0.5) / (df + 0.5))

    def features(
        self,
        question: str,
        terms: list[str],
        sentences: list[Sentence],
        tag_all: bool = False,
    ) -> list[dict[str, float]]:
        """The signals behind a sentence's score (names as in WEIGHTS), one dict per sentence.

        Telling a person or place needs part-of-speech tags, which are slow: unless
        `tag_all`, `rank` tags only its leading candidates.
        """
        chars = question_chars(question)
        wanted = answer_type(question)
        unique_terms = set(terms)
        before, after = asking_sides(question)
        texts = [s.text.lower() for s in sentences]
        # Rarity among the candidates themselves: a character they all hold tells none apart.
        n = len(texts)
        local_idf = {}
        for c in chars:
            df = sum(c in t for t in texts)
            local_idf[c] = math.log1p((n - df + 0.5) / (df + 0.5))
        out = []
        for sentence, lowered in zip(sentences, texts, strict=True):
            text, title_l = sentence.text, sentence.title.lower()
            down = {c: TITLE_WEIGHT if c in title_l else 1.0 for c in chars}
            char_w = {c: self.char_idf(c) * down[c] for c in chars}
            local_w = {c: local_idf[c] * down[c] for c in chars}
            word_w = {
                t: self.word_idf(t) * (TITLE_WEIGHT if title_l and t in title_l else 1.0)
                for t in unique_terms
            }
            words = self.tokenizer.words_among(lowered, unique_terms)
            present = set(lowered)
            typed = wanted in _CHEAP_TYPES or (wanted is not None and tag_all)
            out.append(
                {
                    "chars": share(char_w, present),
                    "local": share(local_w, present),
                    "words": share(word_w, words),
                    "sides": _sides_found(before, after, _NON_WORD.sub("", lowered)),
                    "type": float(typed and self.has_type(text, wanted, question)),
                    "passage": sentence.passage_score,
                    "length": min(len(text), 200) / 200,
                }
            )
        return out

    def rank(
        self,
        question: str,
        terms: list[str],
        sentences: list[Sentence],
    ) -> list[Candidate]:
        """Score the sentences, best first."""
        features = self.features(question, terms, sentences)
        scored = [
            [sum(WEIGHTS[k] * v for k, v in f.items()), s.row, s.start, s.end, s.text]
            for f, s in zip(features, sentences, strict=True)
        ]
        scored.sort(key=lambda s: -s[0])
        wanted = answer_type(question)
        if wanted and wanted not in _CHEAP_TYPES:
            for item in scored[:8]:
                if self.has_type(item[4], wanted, question):
                    item[0] += WEIGHTS["type"]
            scored.sort(key=lambda s: -s[0])
        return [Candidate(c, s, e, t, score) for score, c, s, e, t in scored]

    def has_type(self, sentence: str, wanted: str, question: str) -> bool:
        """Does the sentence hold something of the wanted answer type?

        Read in simplified characters: jieba's dictionary is simplified, and tagging
        traditional text falls back on its slow guessing of unknown words (~100 ms a sentence).
        """
        sentence = simplified(sentence)
        if wanted == "number":
            return bool(_NUMBER.search(sentence))
        if wanted == "date":
            return bool(_DATE.search(sentence))
        flags = ("nr", "nrt", "nt", "nz") if wanted == "person" else ("ns", "nt")
        question = simplified(question)
        return any(f in flags and w not in question for w, f in self.tokenizer.tagged(sentence))


def share(weights: dict[str, float], present: set[str]) -> float:
    """Weighted share of the keys of `weights` that are in `present`."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(w for key, w in weights.items() if key in present) / total
