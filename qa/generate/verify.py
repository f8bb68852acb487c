"""Check each sentence of a generated reply against the source sentences it cites.

A sentence is supported when
1. it cites at least one source that exists ([n] with 1 <= n <= the number of sources);
2. every number, date, quantity and name in it occurs in a cited sentence, its paragraph or
   its article's title (numbers compared whole: 800万 is not found in 900万, 80 not in 800;
   with their magnitude: 900亿 is not 900万; written in Chinese numerals or full-width
   digits: 八百万 is 800万, 二〇二〇 is 2020);
3. with several sources cited, the numbers and names of each clause occur together in one
   of them (a figure of one source is not put on the subject of another);
4. every negation in it (不, 没有, 未 ...) occurs in a source sentence that says the same
   thing (one holding at least half of its content words);
5. at least CONTENT_SHARE of its other content words occur there too, in the sentence as a
   whole and in each of its clauses (so one unsupported clause cannot hide behind a source
   repeated word for word).

The share was measured on DRCD (benchmarks/verify_rule.py, docs/how-it-works.md):
faithful sentences against sentences with one number, name or two content words changed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..index.tokenize import QUESTION_WORDS, STOPWORDS, Tokenizer

CONTENT_SHARE = 0.75  # share of a sentence's content words its sources must hold
# Words that talk about the sources rather than say something (根据原文, 文中提到 ...): not
# counted among the content words (docs/how-it-works.md, "Generated answers": 0.33 -> 0.97 of
# sentences with such a lead-in pass).
SOURCE_TALK = frozenset(
    "根据 依据 原文 资料 文中 文章 来源 材料 提到 提及 指出 表示 显示 说明 所述 可知 记载 "
    "介绍 答案 回答 总之 总的来说 因此 另外 此外 其中 据此 以上 如下 上述".split()
)
NAME_FLAGS = ("nr", "ns", "nt", "nz")  # jieba tags of person, place, organisation, other names

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\]|【(\d{1,3})】")
_SENTENCE = re.compile(r"[^。！？!?\n]*(?:[。！？!?]+|\n|$)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A number with the magnitude written after it (900万, 1.5亿): compared by value.
_QUANTITY = re.compile(r"(\d+(?:[.,]\d+)*)\s*([十百千万亿]+)")
_DIGITS_CN = "〇零一二两三四五六七八九"
_DIGIT = {c: v for c, v in zip(_DIGITS_CN, (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True)}
# Chinese numerals: a run of two or more (九百万, 二〇二〇, 三十); one alone (一些, 第一) is not
# taken for a number.
_CHINESE_NUMBER = re.compile(f"[{_DIGITS_CN}十百千万亿]{{2,}}")
_MAGNITUDE = {"十": 10, "百": 100, "千": 1000, "万": 10**4, "亿": 10**8}
NEGATIONS = frozenset(
    "不 没 没有 未 无 非 并非 不是 不会 不能 不再 未能 尚未 从未 从不 并未 无法 别 勿 莫 否".split()
)
_CLAUSE = re.compile(r"[^，,；;：:]+")
_EVIDENCE_CLAUSE = re.compile(r"[，,；;：:。！？!?\n]")
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


@lru_cache(maxsize=256)  # the same evidence is read for every sentence of a reply
def numbers(text: str) -> frozenset[str]:
    """Whole numbers in `text`, thousands separators removed."""
    found = _NUMBER.findall(unicodedata.normalize("NFKC", text))
    return frozenset(n.replace(",", "") for n in found)


def chinese_value(run: str) -> int | None:
    """The value of a run of Chinese numerals: 九百万 9000000, 二〇二〇 2020, 三十 30."""
    if len(run) > 20:  # not a number anyone writes; int() and float() would overflow
        return None
    if not any(c in _MAGNITUDE for c in run):  # 二〇二〇, 一九四九: digit by digit
        return int("".join(str(_DIGIT[c]) for c in run))
    total, section, digit = 0, 0, None
    for c in run:
        if c in _DIGIT:
            if digit is not None:  # 三五: not a well-formed number
                return None
            digit = _DIGIT[c]
        elif c == "亿":
            total = (total + section + (digit or 0)) * _MAGNITUDE[c]
            section, digit = 0, None
        elif c == "万":
            total += (section + (digit or 0)) * _MAGNITUDE[c]
            section, digit = 0, None
        else:
            section += (1 if digit is None else digit) * _MAGNITUDE[c]
            digit = None
    return total + section + (digit or 0)


@lru_cache(maxsize=256)
def quantities(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(written, values) of the numbers of `text` that have a magnitude or are in Chinese
    numerals: 900万 and 九百万 both give the value "9000000"."""
    text = unicodedata.normalize("NFKC", text)
    written, values = set(), set()
    for m in _QUANTITY.finditer(text):
        written.add(m.group())
        try:
            base = float(m.group(1).replace(",", ""))
        except ValueError:
            continue
        for c in m.group(2):
            base *= _MAGNITUDE[c]
        values.add(f"{base:.6g}")
    for run in _CHINESE_NUMBER.findall(text):
        value = chinese_value(run)
        written.add(run)
        if value is not None:
            values.add(f"{float(value):.6g}")
    return frozenset(written), frozenset(values)


def plain_values(text: str) -> set[str]:
    """The values of the plain numbers of `text` (2020, 6697), for matching 二〇二〇."""
    out = set()
    for n in numbers(text):
        try:
            out.add(f"{float(n):.6g}")
        except ValueError:
            pass
    return out


def facts(text: str, tokenizer: Tokenizer) -> tuple[set[str], set[str]]:
    """(numbers, names) of `text`: digits, and words jieba tags as names, quoted terms and
    Latin words."""
    names = {w for w, flag in tokenizer.tagged(text) if flag.startswith(NAME_FLAGS) and len(w) > 1}
    names |= set(_QUOTED.findall(text)) | {w for w in _LATIN.findall(text) if len(w) > 1}
    return numbers(text), names


def missing_quantities(plain: str, evidence: str) -> list[str]:
    """The reply's magnitudes and Chinese numerals that its evidence does not hold."""
    written, _ = quantities(plain)
    have_written, have_values = quantities(evidence)
    have_values = have_values | plain_values(evidence)
    missing = []
    for w in sorted(written):
        if w in have_written:
            continue
        _, values = quantities(w)
        if not values or not values <= have_values:
            missing.append(w)
    return missing


def mixed_clause(
    plain: str, cited: Sequence[int], sources: Mapping[int, Source], names: set[str]
) -> str:
    """A clause whose numbers and names no single cited source holds together ("" if none):
    粤省事已突破900万用户[1][2] when 900万 is 赣服通's figure in [1] and 粤省事 is in [2]."""
    for clause in _CLAUSE.findall(plain):
        found, named = numbers(clause), [name for name in names if name in clause]
        if not found and not named:
            continue
        for n in cited:
            text = "\n".join((sources[n].sentence, sources[n].paragraph, sources[n].title))
            if found <= numbers(text) and all(name in text for name in named):
                break
        else:
            return clause.strip(" 。！？!?")
    return ""


_NEGATIONS_SEEN: dict[tuple[int, str], list[tuple[str, list[tuple[str, str]]]]] = {}


def negations_of(evidence: str, tokenizer: Tokenizer) -> list[tuple[str, list[tuple[str, str]]]]:
    """The clauses of `evidence` (lowercased), each with its (negation, the word it negates)
    pairs; worked out once per evidence, not once per reply clause."""
    key = (id(tokenizer), evidence)
    if key not in _NEGATIONS_SEEN:
        if len(_NEGATIONS_SEEN) > 256:
            _NEGATIONS_SEEN.clear()
        out = []
        for clause in _EVIDENCE_CLAUSE.split(evidence.lower()):
            pairs = []
            if any(n in clause for n in NEGATIONS):
                tokens = tokenizer.words(clause)
                for i, token in enumerate(tokens):
                    after = [t for t in tokens[i + 1 : i + 3] if len(t) > 1 and t not in STOPWORDS]
                    if token in NEGATIONS and after:
                        pairs.append((token, after[0]))
            out.append((clause, pairs))
        _NEGATIONS_SEEN[key] = out
    return _NEGATIONS_SEEN[key]


def dropped_negation(plain: str, evidence: str, tokenizer: Tokenizer) -> str:
    """A negation of the source that the reply left out ("" if none): 夺得总冠军 cited from a
    clause saying 未能夺得总冠军. Read for a reply (clause) without any negation and with two
    content words or more: the source clause holding most of them has a negation right
    before one of them, and no clause without a negation holds as many."""
    if any(w in NEGATIONS for w in tokenizer.words(plain)):
        return ""
    words = {w.lower() for w in content_words(plain, tokenizer)}
    if len(words) < 2:
        return ""
    need = max(2, (len(words) + 1) // 2)
    plain_best, negated, negated_best = 0, "", 0
    for clause, pairs in negations_of(evidence, tokenizer):
        held = sum(w in clause for w in words)
        if held < need:
            continue
        found = next((n + w for n, w in pairs if w in words), "")
        if not found:
            plain_best = max(plain_best, held)
        elif held > negated_best:
            negated, negated_best = found, held
    return negated if negated_best > plain_best else ""


def unsupported_negation(plain: str, evidence: str, tokenizer: Tokenizer) -> str:
    """A negation of the reply that no source sentence saying the same thing holds ("" if
    none)."""
    said = [w for w in tokenizer.words(plain) if w in NEGATIONS]
    if not said:
        return ""
    words = {w.lower() for w in content_words(plain, tokenizer)}
    need = (len(words) + 1) // 2
    near = [
        sentence
        for sentence in _SENTENCE.findall(evidence.lower())
        if sentence.strip() and sum(w in sentence for w in words) >= need
    ]
    for w in said:
        if not any(w in sentence for sentence in near):
            return w
    return ""


def single_characters(text: str, names: set[str], tokenizer: Tokenizer) -> list[str]:
    """The one-character words of `text` that carry meaning (坏, 死, 关), names left out."""
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " ")
    return [
        w
        for w in tokenizer.words(text)
        if len(w) == 1
        and "\u4e00" <= w <= "\u9fff"
        and w not in STOPWORDS
        and w not in QUESTION_WORDS
        and w not in SOURCE_TALK
        and w not in NEGATIONS
        and not w.isnumeric()
    ]


def content_words(text: str, tokenizer: Tokenizer) -> list[str]:
    """Words that carry meaning: no stopwords, question words, single characters or digits."""
    return [
        w
        for w in tokenizer.words(text)
        if len(w) > 1
        and w not in STOPWORDS
        and w not in QUESTION_WORDS
        and w not in SOURCE_TALK
        and not w.isnumeric()  # 900, 九百万: checked as numbers
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
    missing = sorted(found_numbers - numbers(evidence)) or missing_quantities(plain, evidence)
    if missing:
        return Verdict(sentence, cited, f"数字{'、'.join(missing)}不在所引原文中")
    absent = sorted(n for n in names if n not in evidence)
    if absent:
        return Verdict(sentence, cited, f"“{'、'.join(absent)}”不在所引原文中")
    if len(cited) > 1 and (mixed := mixed_clause(plain, cited, sources, names)):
        return Verdict(sentence, cited, f"“{mixed}”拼合了不同来源的内容")
    if negation := unsupported_negation(plain, evidence, tokenizer):
        return Verdict(sentence, cited, f"“{negation}”不在所引原文中")
    for part in (plain, *_CLAUSE.findall(plain)):
        if negation := dropped_negation(part, evidence, tokenizer):
            return Verdict(sentence, cited, f"原文为“{negation}”,回答略去了否定")
    folded = evidence.lower()
    for part in (plain, *_CLAUSE.findall(plain)):
        spelt = _CHINESE_NUMBER.sub(" ", part)  # checked as numbers above
        words = [w for w in content_words(spelt, tokenizer) if w not in names]
        if not words:  # 赣服通很坏, …，都死了: a clause that says something in single characters
            words = single_characters(spelt, names, tokenizer)
        if words:  # the tokenizer lowercases Latin words: Entertainment is "entertainment"
            held = sum(w.lower() in folded for w in words) / len(words)
            if held < share:
                return Verdict(sentence, cited, f"只有{held:.0%}的词见于所引原文")
    return Verdict(sentence, cited)


def verify(text: str, sources: Sequence[Source], tokenizer: Tokenizer) -> list[Verdict]:
    """A verdict for every sentence of a reply."""
    by_number = {s.n: s for s in sources}
    return [check(s, by_number, tokenizer) for s in split_reply(text)]
