"""Check each sentence of a generated reply against the source sentences it cites.

A sentence is supported when
1. it cites at least one source that exists ([n] with 1 <= n <= the number of sources);
2. every number, date, quantity and name in it occurs in a cited sentence, its paragraph or
   its article's title (numbers compared whole: 800万 is not found in 900万, 80 not in 800);
3. at least CONTENT_SHARE of its other content words occur there too.

The share was measured on DRCD (benchmarks/verify_rule.py, README "Generated answers"):
faithful sentences against sentences with one number, name or two content words changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .tokenize import QUESTION_WORDS, STOPWORDS, Tokenizer

CONTENT_SHARE = 0.75  # share of a sentence's content words its sources must hold
# Words that talk about the sources rather than say something (根据原文, 文中提到 ...): not
# counted among the content words (README, "Generated answers": 0.33 -> 0.97 of faithful
# sentences with such a lead-in pass).
SOURCE_TALK = frozenset(
    "根据 依据 原文 资料 文中 文章 来源 材料 提到 提及 指出 表示 显示 说明 所述 可知 记载 "
    "介绍 答案 回答 总之 总的来说 因此 另外 此外 其中 据此 以上 如下 上述".split()
)
NAME_FLAGS = ("nr", "ns", "nt", "nz")  # jieba tags of person, place, organisation, other names

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\]|【(\d{1,3})】")
_SENTENCE = re.compile(r"[^。！？!?\n]*(?:[。！？!?]+|\n|$)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A unit or magnitude right after a number: 万, 亿, 年, 月, 日, 号, %, 公里 ...
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_QUOTED = re.compile(r"[「『“《]([^」』”》]{1,30})[」』”》]")
_END_PUNCT = " \t,，;；:：、"


@dataclass(frozen=True)
class Source:
    """Source `n` as the model saw it: the sentence and the paragraph it sits in."""

    n: int
    sentence: str
    paragraph: str
    title: str = ""


@dataclass(frozen=True)
class Verdict:
    """One reply sentence, its markers, and why it is unsupported ("" when it is supported)."""

    sentence: str  # as written, markers included
    cites: tuple[int, ...]  # the existing sources it cites
    reason: str = ""

    @property
    def supported(self) -> bool:
        return not self.reason


def split_reply(text: str) -> list[str]:
    """The reply's sentences, each with the markers that follow it (…。[1] stays together)."""
    out: list[str] = []
    for piece in _SENTENCE.findall(text):
        if not piece.strip():
            continue
        lead = MARKER.match(piece.strip())
        # A marker written after the full stop belongs to the sentence before it.
        while lead and out:
            out[-1] += lead.group()
            piece = piece.strip()[lead.end() :]
            lead = MARKER.match(piece.strip())
        if piece.strip():
            out.append(piece.strip())
    return out


def markers(sentence: str) -> list[int]:
    """The source numbers a sentence cites: [1], [1][2], [1,2], 【1】."""
    found: list[int] = []
    for m in MARKER.finditer(sentence):
        for n in re.split(r"[,，、\s]+", m.group(1) or m.group(2)):
            if n and int(n) not in found:
                found.append(int(n))
    return found


def without_markers(sentence: str) -> str:
    return MARKER.sub("", sentence).strip()


def numbers(text: str) -> set[str]:
    """Whole numbers in `text`, thousands separators removed."""
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def facts(text: str, tokenizer: Tokenizer) -> tuple[set[str], set[str]]:
    """(numbers, names) of `text`: digits, and words jieba tags as names, quoted terms and
    Latin words."""
    names = {w for w, flag in tokenizer.tagged(text) if flag.startswith(NAME_FLAGS) and len(w) > 1}
    names |= set(_QUOTED.findall(text)) | {w for w in _LATIN.findall(text) if len(w) > 1}
    return numbers(text), names


def content_words(text: str, tokenizer: Tokenizer) -> list[str]:
    """Words that carry meaning: no stopwords, question words, single characters or digits."""
    return [
        w
        for w in tokenizer.words(text)
        if len(w) > 1
        and w not in STOPWORDS
        and w not in QUESTION_WORDS
        and w not in SOURCE_TALK
        and not w.isdigit()
    ]


def check(
    sentence: str,
    sources: Mapping[int, Source],
    tokenizer: Tokenizer,
    share: float = CONTENT_SHARE,
) -> Verdict:
    """Whether `sentence` (with its [n] markers) is supported by the sources it cites."""
    cited = tuple(n for n in markers(sentence) if n in sources)
    if not markers(sentence):
        return Verdict(sentence, (), "没有标注来源")
    if not cited:
        return Verdict(sentence, (), "引用了不存在的来源")
    plain = without_markers(sentence)
    evidence = "\n".join(
        part
        for n in cited
        for part in (sources[n].sentence, sources[n].paragraph, sources[n].title)
    )
    found_numbers, names = facts(plain, tokenizer)
    missing = sorted(found_numbers - numbers(evidence))
    if missing:
        return Verdict(sentence, cited, f"数字{'、'.join(missing)}不在所引原文中")
    absent = sorted(n for n in names if n not in evidence)
    if absent:
        return Verdict(sentence, cited, f"“{'、'.join(absent)}”不在所引原文中")
    words = [w for w in content_words(plain, tokenizer) if w not in names]
    if words:
        held = sum(w in evidence for w in words) / len(words)
        if held < share:
            return Verdict(sentence, cited, f"只有{held:.0%}的词见于所引原文")
    return Verdict(sentence, cited)


def verify(text: str, sources: Sequence[Source], tokenizer: Tokenizer) -> list[Verdict]:
    """A verdict for every sentence of a reply."""
    by_number = {s.n: s for s in sources}
    return [check(s, by_number, tokenizer) for s in split_reply(text)]
