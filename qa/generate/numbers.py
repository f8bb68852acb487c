"""Numbers as a reply or a source writes them: 900万, 九百万, 捌佰万, 0.9千万 and 900余万 are
one value; the measure word after a number (6697项, 112种) is part of what it says."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

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
_PEOPLE = frozenset("人名位")  # 900万人, 900万名: one count of people
_NUMERAL = re.compile(
    r"(?:(?P<digits>[0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?)"
    # Chinese numerals: a run of two or more (九百万, 二〇二〇, 三十), or one of 二 to 十
    # before a measure word (三个方面); 一 alone (一些, 第一, 统一) is not taken for a number.
    rf"|(?P<chinese>[{_DIGITS_CN}十百千万亿]{{2,}}|[二两三四五六七八九十](?=[余多]?[{_MEASURE}])))"
    # 余 or 多 ("a little over") before or after the magnitude: 900余万, 900多万, 9万多
    rf"\s*[余多]?(?P<magnitude>[十百千万亿]*)[余多]?(?P<unit>[{_MEASURE}]?)"
)


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
