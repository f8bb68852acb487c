"""Check each sentence of a generated reply against the source sentences it cites.

A sentence is supported when
1. it cites at least one source that exists ([n] with 1 <= n <= the number of sources);
2. every number, date, quantity and name in it occurs in a cited sentence, its paragraph or
   its article's title. Numbers are compared by exact value, with their magnitude and the
   measure word after them: 800万 is not 900万, 80 not 800, 900亿 not 900万, 112项 not
   112种; 八百万, 捌佰万, ８００万 and 0.8千万 are 800万, 二〇二〇 is 2020, 三个 is 3个
   (一 alone, as in 一些 or 第一, is not a number). 900余万 and 900多万 are read as 900万:
   "a little over" a figure the source itself rounds (已突破900万), never another magnitude;
3. the numbers and names of each clause occur together in ONE source sentence (with its
   article's title), not just somewhere in the paragraph the model read; and there they keep
   their relations: a number keeps the name before it and the word after it (华为在东莞的10亿
   fails against 华为在东莞的27.4亿、数字广东在广东的10亿), two names keep their order
   around the words between them (英国借鉴了澳大利亚 fails against 澳大利亚借鉴了英国);
4. every negation in it (不, 没有, 未 ...) occurs in a source sentence that says the same
   thing (one holding at least half of its content words), a negation of the source is not
   dropped, and no word is the opposite of what the source sentence says (增加 where it says
   减少, 之前 where it says 之后);
5. at least CONTENT_SHARE of its other content words occur there too, in the sentence as a
   whole and in each of its clauses (so one unsupported clause cannot hide behind a source
   repeated word for word);
6. (`verify`) a sentence opening with a pronoun (它, 其, 该 ...) speaks of the first name of
   the sentence before it: that sentence must be supported, and the name must be in the
   source sentence that supports this one or in its title (腾讯云…5.2亿[3]。它已突破900万
   用户[1] fails when [1] is about 赣服通).

The share and the rules were measured on DRCD (benchmarks/verify_rule.py,
docs/how-it-works.md): faithful sentences against sentences with numbers, names or words
changed, moved within the paragraph or swapped within the sentence, a word turned into its
opposite, and a pronoun carrying a fact to another subject.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
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
# A sentence opening with one of these speaks of the subject of the sentence before it.
PRONOUNS = frozenset("它 它们 其 该 他 她 他们 她们 这 此 这个 这些".split())
# Words and their opposites: a reply word whose opposite is in the source sentence that
# supports it, while the word itself is not, turns what the source says around.
_OPPOSITE_PAIRS = (
    "增加/减少 增长/下降 增长/减少 上升/下降 提高/降低 提升/降低 扩大/缩小 增多/减少 上涨/下跌 "
    "上线/下线 开通/关闭 开放/关闭 多/少 高/低 最大/最小 最多/最少 最高/最低 最早/最晚 "
    "支持/反对 赢/输 胜/负 胜利/失败 获胜/失败 成功/失败 之前/之后 以前/以后 早/晚 领先/落后"
).split()
OPPOSITES: dict[str, frozenset[str]] = {}
for _a, _b in (pair.split("/") for pair in _OPPOSITE_PAIRS):
    OPPOSITES[_a] = OPPOSITES.get(_a, frozenset()) | {_b}
    OPPOSITES[_b] = OPPOSITES.get(_b, frozenset()) | {_a}

_DEGREE = "最更较很太偏"  # 最早, 较高: the word after them is one of OPPOSITES

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\]|【(\d{1,3})】")
_SENTENCE = re.compile(r"[^。！？!?\n]*(?:[。！？!?]+|\n|$)")
_DIGITS_CN = "〇零一二两三四五六七八九"
_DIGIT = {c: v for c, v in zip(_DIGITS_CN, (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True)}
_MAGNITUDE = {"十": 10, "百": 100, "千": 1000, "万": 10**4, "亿": 10**8}
# Financial numerals (捌佰万) are the everyday ones (八百万), one character for one.
_FINANCIAL = str.maketrans(
    "壹贰貳叁參肆伍陆陸柒捌玖拾佰仟萬億", "一二二三三四五六六七八九十百千万亿"
)
# Measure words: a number is bound to the one after it (6697项服务 is not 6697种).
_MEASURE = (
    "个项种名位次件家所座条年月日号天周岁元人只本张部类届场倍成台辆架艘间门首篇章册套批支"
    "枚颗棵株层户级%吨米"
)
NEXT_TO = 2  # characters at most between a number and the word it counts (10亿的大单)
_PEOPLE = frozenset("人名位")  # 900万人, 900万名: one count of people
# A word across these is not what a number counts: 服务和112种, 篮网队在2002年
_JOINS = frozenset("和与及或并同跟、在于从到自至")
_NAME_GLUE = frozenset("的之各")  # what may stand between a word and the name it precedes
_NUMERAL = re.compile(
    r"(?:(?P<digits>[0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?)"
    # Chinese numerals: a run of two or more (九百万, 二〇二〇, 三十), or one of 二 to 十
    # before a measure word (三个方面); 一 alone (一些, 第一, 统一) is not taken for a number.
    rf"|(?P<chinese>[{_DIGITS_CN}十百千万亿]{{2,}}|[二两三四五六七八九十](?=[余多]?[{_MEASURE}])))"
    # 余 or 多 ("a little over") before or after the magnitude: 900余万, 900多万, 9万多
    rf"\s*[余多]?(?P<magnitude>[十百千万亿]*)[余多]?(?P<unit>[{_MEASURE}]?)"
)
NEGATIONS = frozenset(
    "不 没 没有 未 无 非 并非 不是 不会 不能 不再 未能 尚未 从未 从不 并未 无法 别 勿 莫 否".split()
)
# A clause of the reply; a comma or colon between digits (1,000, 12:30) does not end it.
_CLAUSE = re.compile(r"(?:[^，,；;：:]|(?<=[0-9])[,:](?=[0-9]))+")
_EVIDENCE_CLAUSE = re.compile(r"[，,；;：:。！？!?\n]")
_CLAUSE_END = re.compile(r"[，,；;：:、。！？!?\n]")  # what separates a number from a word
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_QUOTED = re.compile(r"[「『“《]([^」』”》]{1,30})[」』”》]")


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


@dataclass(frozen=True)
class Number:
    """A number in a text: where it is, its exact value and the measure word after it."""

    start: int
    end: int
    written: str  # as written, magnitude included, measure word left out
    value: Fraction | None  # None for a run no one writes as a number: compared as written
    unit: str  # 项, 种, 年 ...; "" when none follows

    def same(self, other: Number) -> bool:
        """Whether `other` states this number: the same value, and no other measure word
        (个 goes with any; 人, 名 and 位 count the same people)."""
        if self.value is None or other.value is None:
            if self.written != other.written:
                return False
        elif self.value != other.value:
            return False
        units = {self.unit, other.unit} - {"", "个"}
        return len(units) < 2 or units <= _PEOPLE

    def __str__(self) -> str:
        return self.written + self.unit


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


def normal(text: str) -> str:
    """Full-width digits, letters and punctuation as their usual forms (NFKC)."""
    return unicodedata.normalize("NFKC", text)


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


def _value(m: re.Match) -> Fraction | None:
    """The exact value of a number found by _NUMERAL (never rounded: 12345678 is not
    12345679)."""
    if len(m["magnitude"]) > 3:  # 亿亿亿亿…: not a number anyone writes
        return None
    if m["digits"]:
        digits = m["digits"].replace(",", "")
        if len(digits) > 30:  # and far below int()'s 4,300-digit limit
            return None
        value = Fraction(digits)
    else:
        whole = chinese_value(m["chinese"])
        if whole is None:
            return None
        value = Fraction(whole)
    for c in m["magnitude"]:
        value *= _MAGNITUDE[c]
    return value


@lru_cache(maxsize=1024)  # the same evidence is read for every sentence of a reply
def numbers_in(text: str) -> tuple[Number, ...]:
    """The numbers of `text` (normalised with `normal`), in order."""
    found = []
    for m in _NUMERAL.finditer(text.translate(_FINANCIAL)):
        written = text[m.start() : m.start("unit")].strip()
        found.append(Number(m.start(), m.end(), written, _value(m), m["unit"]))
    return tuple(found)


def blank_numbers(text: str) -> str:
    """`text` with its numbers (and their measure words) replaced by spaces."""
    for n in reversed(numbers_in(text)):
        text = text[: n.start] + " " * (n.end - n.start) + text[n.end :]
    return text


@lru_cache(maxsize=8192)  # each source sentence is tagged once, not once per reply sentence
def names_of(text: str, tokenizer: Tokenizer) -> frozenset[str]:
    """Words jieba tags as names, quoted terms and Latin words of `text`."""
    names = {w for w, flag in tokenizer.tagged(text) if flag.startswith(NAME_FLAGS) and len(w) > 1}
    names |= set(_QUOTED.findall(text)) | {w for w in _LATIN.findall(text) if len(w) > 1}
    return frozenset(names)


@lru_cache(maxsize=256)
def units_of(source: Source) -> tuple[str, ...]:
    """The sentences of a source (its sentence, then its paragraph's), each after the title
    of its article: where the facts of one reply clause must be found together."""
    title = normal(source.title)
    text = normal(source.sentence + "\n" + source.paragraph)
    said = (s.strip() for s in _SENTENCE.findall(text))
    return tuple(dict.fromkeys(f"{title}\n{s}" for s in said if s))


def occurrences(word: str, text: str) -> list[int]:
    """Where `word` starts in `text`."""
    found, at = [], text.find(word)
    while at >= 0:
        found.append(at)
        at = text.find(word, at + 1)
    return found


def missing_numbers(plain: str, units: Sequence[str]) -> list[str]:
    """The reply's numbers that no cited sentence, paragraph or title states."""
    have: dict[Fraction | str, list[Number]] = {}
    for unit in units:
        for n in numbers_in(unit):
            have.setdefault(n.written if n.value is None else n.value, []).append(n)
    missing = []
    for n in numbers_in(plain):
        if not any(n.same(h) for h in have.get(n.written if n.value is None else n.value, ())):
            missing.append(str(n))
    return list(dict.fromkeys(missing))


def holds(unit: str, found: Sequence[Number], named: Iterable[str]) -> bool:
    """Whether one source sentence (with its title) states all these numbers and names."""
    have = numbers_in(unit)
    return all(name in unit for name in named) and all(any(n.same(h) for h in have) for n in found)


def scattered_clause(
    plain: str, units: Sequence[str], names: frozenset[str], tokenizer: Tokenizer
) -> str:
    """A clause whose numbers and names no single source sentence holds together ("" if
    none): a figure of one source put on the subject of another (粤省事已突破900万用户[1][2],
    900万 being 赣服通's), or a number moved from another sentence of the paragraph. A
    clause that is only a date or a name (1919年，陈诚…毕业) is read with the next one."""
    clauses = [c.strip(" 。！？!?") for c in _CLAUSE.findall(plain)]
    for i, clause in enumerate(clauses):
        said = [w for w in content_words(blank_numbers(clause), tokenizer) if w not in names]
        window = clauses[i : i + 1 if said else i + 2]
        found = [n for c in window for n in numbers_in(c)]
        named = [name for name in names if any(name in c for c in window)]
        if len(found) + len(named) < 2:
            continue
        if not any(holds(unit, found, named) for unit in units):
            return "，".join(window)
    return ""


def _ties(unit: str, spots: Sequence[tuple[int, int, str]], name: str, n: Number):
    """(tied to n, tied to another number) for `name` in one source sentence: a name is
    tied to the numbers after it up to the next name (1861至1865年), a number to the last
    name before it. The title, in front, speaks of the whole sentence: a name there is tied
    to no number in particular."""
    have, title = numbers_in(unit), unit.find("\n")
    to_n = to_other = False
    for at, end, w in spots:
        if w != name or at < title:
            continue
        others = [a for a, _, v in spots if a >= end and name not in v and v not in name]
        stop = min(others, default=len(unit))
        tied = [h for h in have if end <= h.start < stop]
        if tied:
            mine = any(n.same(h) for h in tied)
            to_n, to_other = to_n or mine, to_other or not mine
    for h in have:
        last = [w for _, end, w in spots if end <= h.start]
        if last and n.same(h) and (name in last[-1] or last[-1] in name):
            to_n = True
    return to_n, to_other


def _word_ties(unit: str, word: str, n: Number, after: bool):
    """(tied to n, tied to another number) for `word` in one source sentence: a word is
    tied to a number written right before it (6697项服务, 10亿的大单), or right after it
    when `after` is False (植物54种)."""
    have = numbers_in(unit)
    to_n = to_other = False
    for at in occurrences(word, unit):
        if after:
            near = [(h, h.end, at) for h in have if at - NEXT_TO <= h.end <= at][-1:]
        else:
            end = at + len(word)
            near = [(h, end, h.start) for h in have if end <= h.start <= end + NEXT_TO][:1]
        for h, lo, hi in near:
            if not _CLAUSE_END.search(unit, lo, hi):
                to_n, to_other = to_n or n.same(h), to_other or not n.same(h)
    return to_n, to_other


def _spots(text: str, names: Iterable[str]) -> list[tuple[int, int, str]]:
    """Where the names occur in `text`: (start, end, name), by end."""
    return sorted(((at, at + len(w), w) for w in names for at in occurrences(w, text)), key=_end)


def _end(spot: tuple[int, int, str]) -> tuple[int, int]:
    return spot[1], spot[0]


def _words_next_to(
    plain: str, start: int, end: int, tokenizer: Tokenizer
) -> list[tuple[str, str, bool]]:
    """The content words written right before and right after plain[start:end], in its
    clause and not across a number: (word, what stands between, whether it is after)."""
    found = []
    text = _CLAUSE_END.split(plain[max(0, start - NEXT_TO - 8) : start])[-1]
    earlier = numbers_in(text)
    words = content_words(text[earlier[-1].end :] if earlier else text, tokenizer)
    if words and (at := text.lower().rfind(words[-1])) >= 0:
        gap = text[at + len(words[-1]) :]
        if len(gap) <= NEXT_TO:
            found.append((words[-1], gap, False))
    text = _CLAUSE_END.split(plain[end : end + NEXT_TO + 8], 1)[0]
    later = numbers_in(text)
    words = content_words(text[: later[0].start] if later else text, tokenizer)
    if words and 0 <= (at := text.lower().find(words[0])) <= NEXT_TO:
        found.append((words[0], text[:at], True))
    return found


def _clause_around(unit: str, start: int, end: int) -> str:
    """The clause of a source sentence that holds unit[start:end] (lowercased)."""
    lo = max((m.end() for m in _CLAUSE_END.finditer(unit, 0, start)), default=0)
    hi = _CLAUSE_END.search(unit, end)
    return unit[lo : hi.start() if hi else len(unit)].lower()


def _where(fact: Number | str, unit: str) -> list[tuple[int, int]]:
    """Where a number (by value) or a name occurs in a source sentence."""
    if isinstance(fact, Number):
        return [(h.start, h.end) for h in numbers_in(unit) if fact.same(h)]
    return [(at, at + len(fact)) for at in occurrences(fact, unit)]


def apart(plain: str, units: Sequence[str], names: frozenset[str], tokenizer: Tokenizer) -> str:
    """A number or name and a word written next to it in the reply that the sources hold,
    but never in one clause ("" if none): 面积136平方公里 when 136 is the area of something
    else, 组建城市 when 城市 is said elsewhere. A number's words are those before and after
    it, not across 和, 与 ... (6697项服务和112种电子证照); a name's only the word right before
    it (组建城市, 政府的安龙): the words after a name may well be in a later clause of the
    sentence it is the subject of (江西排名居于…,位列第12名)."""
    facts = [(str(n), n.start, n.end, n) for n in numbers_in(plain)]
    facts += [(w, at, at + len(w), w) for w in names for at in occurrences(w, plain)[:1]]
    for shown, start, end, fact in facts:
        words = [
            w
            for w, gap, after in _words_next_to(plain, start, end, tokenizer)
            if w not in names
            and any(w in u[u.find("\n") :].lower() for u in units)  # not the title only
            and (
                not _JOINS & set(gap)
                if isinstance(fact, Number)
                else not after and set(gap) <= _NAME_GLUE
            )
        ]
        held = [_clause_around(u, a, b) for u in units for a, b in _where(fact, u)]
        for w in words:
            if not any(w in clause for clause in held):
                return f"原文中“{shown}”与“{w}”不在一处"
    return ""


def _runs(text: str) -> set[tuple[Number, Number]]:
    """Numbers written one right after the other (1950年1月18日): (first, second) pairs."""
    found = numbers_in(text)
    return {
        (a, b) for a, b in zip(found, found[1:], strict=False) if not text[a.end : b.start].strip()
    }


def unbound_number(
    plain: str, units: Sequence[str], names: frozenset[str], tokenizer: Tokenizer
) -> str:
    """Why a number of the reply is not the source's ("" when it is): its source sentence
    ties the name before it, or the word right before or after it, to another number and
    never to this one (华为在东莞的10亿 against 华为在东莞的27.4亿、数字广东在广东的10亿),
    or the word next to it is in the sources but never in a sentence with it; or a date
    (1952年1月18日) is not written whole in one of them."""
    for a, b in _runs(plain):
        if not any(a.same(x) and b.same(y) for u in units for x, y in _runs(u)):
            return f"原文中没有{a}{b}"
    spots = _spots(plain, names)
    for n in numbers_in(plain):
        # the name before it in its own clause: one in an earlier clause is the subject of
        # the sentence, which a source sentence may tie to a number written first
        begins = max((m.end() for m in _CLAUSE_END.finditer(plain, 0, n.start)), default=0)
        named = [w for at, end, w in spots if begins <= at and end <= n.start]
        near = [u for u in units if any(n.same(h) for h in numbers_in(u))]
        if named:
            ties = [
                _ties(u, _spots(u, names | names_of(u, tokenizer)), named[-1], n)
                for u in near
                if named[-1] in u
            ]
            if ties and not any(t for t, _ in ties) and any(o for _, o in ties):
                return f"原文中的{n}不属于“{named[-1]}”"
        for word, gap, is_after in _words_next_to(plain, n.start, n.end, tokenizer):
            if _JOINS & set(gap):
                continue
            ties = [_word_ties(u, word, n, is_after) for u in near if word in u.lower()]
            if ties and not any(t for t, _ in ties) and any(o for _, o in ties):
                return f"原文中的{n}说的不是“{word}”"
    return ""


def reversed_names(
    plain: str, units: Sequence[str], names: frozenset[str], tokenizer: Tokenizer
) -> str:
    """Two names of a clause that the source sentences holding them put the other way
    round, around the words between them ("" if none): 英国全盘借鉴了澳大利亚 against
    澳大利亚全盘借鉴了英国."""
    for clause in _CLAUSE.findall(plain):
        inside = [w for w in names if w in clause]
        first = sorted(
            (clause.find(w), w) for w in inside if not any(w != v and w in v for v in inside)
        )
        for (a_at, a), (b_at, b) in zip(first, first[1:], strict=False):
            between = content_words(clause[a_at + len(a) : b_at], tokenizer)
            forward = backward = False
            for unit in (u for u in units if a in u and b in u):
                xs, ys = occurrences(a, unit), occurrences(b, unit)
                for at in (at for w in between for at in occurrences(w, unit)):
                    forward = forward or min(xs) < at < max(ys)
                    backward = backward or min(ys) < at < max(xs)
            if backward and not forward:
                return f"原文中“{a}”与“{b}”的关系与回答相反"
    return ""


def supporting(units: Sequence[str], plain: str, tokenizer: Tokenizer) -> list[str]:
    """The source sentences holding the most of `plain`'s content words and numbers (none
    when none holds any)."""
    words = [w for w in content_words(blank_numbers(plain), tokenizer) if w not in OPPOSITES]
    found = {(n.value, n.unit): n for n in numbers_in(plain)}.values()
    scores = [
        sum(w in unit.lower() for w in words) + sum(holds(unit, (n,), ()) for n in found)
        for unit in units
    ]
    top = max(scores, default=0)
    return [u for u, score in zip(units, scores, strict=True) if score == top and top]


@lru_cache(maxsize=1024)
def _words(text: str, tokenizer: Tokenizer) -> frozenset[str]:
    return frozenset(tokenizer.words(blank_numbers(text)))


@lru_cache(maxsize=1024)
def _polar(text: str, tokenizer: Tokenizer) -> frozenset[str]:
    """The words of OPPOSITES that `text` says: the longer ones wherever they are written
    (jieba glues 人口减少), one character ones as words of their own or after 最, 更, 较 ...
    (最早, 很高), never inside other words (多数, 早期)."""
    tokens = tokenizer.words(blank_numbers(text))
    said = {t for t in tokens if t in OPPOSITES}
    said |= {t[1] for t in tokens if len(t) == 2 and t[0] in _DEGREE and t[1] in OPPOSITES}
    return frozenset(said | {w for w in OPPOSITES if len(w) > 1 and w in text})


def opposite_word(plain: str, units: Sequence[str], tokenizer: Tokenizer) -> str:
    """Why a word of the reply turns its source around ("" if none): the source sentence
    supporting the clause has the word's opposite and not the word, in the clause holding
    the word before it (江西排名在四川之前 against 江西排名居于四川…之后,湖南…之前)."""
    for clause in _CLAUSE.findall(plain):
        for w in sorted(_polar(clause, tokenizer)):
            words = content_words(clause[: clause.find(w)], tokenizer)
            before = [t for t in words if t not in OPPOSITES][-1:]
            said = []
            for unit in supporting(units, clause, tokenizer):
                parts = [p for p in _EVIDENCE_CLAUSE.split(unit) if before and before[0] in p]
                said += [_polar(p, tokenizer) for p in parts or [unit]]
            if said and not any(w in polar for polar in said):
                if opposite := sorted(OPPOSITES[w] & set().union(*said)):
                    return f"原文为“{opposite[0]}”,回答写作“{w}”"
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
    plain = normal(without_markers(sentence))
    evidence = normal(
        "\n".join(
            part
            for n in cited
            for part in (sources[n].sentence, sources[n].paragraph, sources[n].title)
        )
    )
    units = tuple(dict.fromkeys(u for n in cited for u in units_of(sources[n])))
    # the reply's names, and the words of it that its sources tag as names (jieba tags a
    # word by its context: 安龙 is a name in the source, not in 对政府的安龙)
    names = names_of(plain, tokenizer) | {
        w for u in units for w in names_of(u, tokenizer) if w in plain
    }
    if missing := missing_numbers(plain, units):
        return Verdict(sentence, cited, f"数字{'、'.join(missing)}不在所引原文中")
    absent = sorted(n for n in names if n not in evidence)
    if absent:
        return Verdict(sentence, cited, f"“{'、'.join(absent)}”不在所引原文中")
    if scattered := scattered_clause(plain, units, names, tokenizer):
        return Verdict(sentence, cited, f"“{scattered}”的数字和名称不在原文的同一句中")
    if negation := unsupported_negation(plain, evidence, tokenizer):
        return Verdict(sentence, cited, f"“{negation}”不在所引原文中")
    for part in (plain, *_CLAUSE.findall(plain)):
        if negation := dropped_negation(part, evidence, tokenizer):
            return Verdict(sentence, cited, f"原文为“{negation}”,回答略去了否定")
    for rule in (apart, unbound_number, reversed_names):  # how its facts are tied
        if why := rule(plain, units, names, tokenizer):
            return Verdict(sentence, cited, why)
    if turned := opposite_word(plain, units, tokenizer):
        return Verdict(sentence, cited, turned)
    folded = evidence.lower()
    for part in (plain, *_CLAUSE.findall(plain)):
        spelt = blank_numbers(part)  # checked as numbers above
        words = [w for w in content_words(spelt, tokenizer) if w not in names]
        if not words:  # 赣服通很坏, …，都死了: a clause that says something in single characters
            words = single_characters(spelt, names, tokenizer)
        if words:  # the tokenizer lowercases Latin words: Entertainment is "entertainment"
            held = sum(w.lower() in folded for w in words) / len(words)
            if held < share:
                return Verdict(sentence, cited, f"只有{held:.0%}的词见于所引原文")
    return Verdict(sentence, cited)


def leading_pronoun(plain: str, tokenizer: Tokenizer) -> str:
    """The pronoun a sentence opens with (它, 其, 该 ...; after a lead-in such as 根据原文),
    "" if none."""
    for w in tokenizer.words(plain[:12]):
        if w not in SOURCE_TALK:
            return w if w in PRONOUNS else ""
    return ""


def first_name(plain: str, tokenizer: Tokenizer) -> str:
    """The name a sentence mentions first: what a pronoun in the next one stands for."""
    spots = sorted(
        (at, -len(w), w) for w in names_of(plain, tokenizer) if (at := plain.find(w)) >= 0
    )
    return spots[0][2] if spots else ""


def verify(text: str, sources: Sequence[Source], tokenizer: Tokenizer) -> list[Verdict]:
    """A verdict for every sentence of a reply. A sentence opening with a pronoun is also
    unsupported when the sentence it refers to is (what it stands for would be left out),
    or when the name that sentence opens with is not in the source sentence supporting it:
    腾讯云在长沙的大单是5.2亿[3]。它已突破900万用户[1], [1] being about 赣服通."""
    by_number = {s.n: s for s in sources}
    verdicts: list[Verdict] = []
    subject = ""
    for sentence in split_reply(text):
        verdict = check(sentence, by_number, tokenizer)
        plain = normal(without_markers(sentence))
        pronoun = leading_pronoun(plain, tokenizer)
        if not pronoun:
            subject = first_name(plain, tokenizer)
        elif verdict.supported and verdicts and not verdicts[-1].supported:
            verdict = dataclasses.replace(verdict, reason=f"“{pronoun}”所指的上一句未能核实")
        elif verdict.supported and subject:
            units = [u for n in verdict.cites for u in units_of(by_number[n])]
            if not any(subject in u for u in supporting(units, plain, tokenizer)):
                why = f"“{pronoun}”指上一句的“{subject}”,所引原文说的不是它"
                verdict = dataclasses.replace(verdict, reason=why)
        verdicts.append(verdict)
    return verdicts
