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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..index.tokenize import QUESTION_WORDS, STOPWORDS, Tokenizer
from .numbers import blank_numbers, normal, numbers_in
from .ties import apart, holds, missing_numbers, reversed_names, scattered_clause, unbound_number
from .words import CLAUSE, SOURCE_TALK, content_words, names_of

CONTENT_SHARE = 0.75  # share of a sentence's content words its sources must hold
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
NEGATIONS = frozenset(
    "不 没 没有 未 无 非 并非 不是 不会 不能 不再 未能 尚未 从未 从不 并未 无法 别 勿 莫 否".split()
)
_EVIDENCE_CLAUSE = re.compile(r"[，,；;：:。！？!?\n]")


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


@lru_cache(maxsize=256)
def units_of(source: Source) -> tuple[str, ...]:
    """The sentences of a source (its sentence, then its paragraph's), each after the title
    of its article: where the facts of one reply clause must be found together."""
    title = normal(source.title)
    text = normal(source.sentence + "\n" + source.paragraph)
    said = (s.strip() for s in _SENTENCE.findall(text))
    return tuple(dict.fromkeys(f"{title}\n{s}" for s in said if s))


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
    for clause in CLAUSE.findall(plain):
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
    for part in (plain, *CLAUSE.findall(plain)):
        if negation := dropped_negation(part, evidence, tokenizer):
            return Verdict(sentence, cited, f"原文为“{negation}”,回答略去了否定")
    for rule in (apart, unbound_number, reversed_names):  # how its facts are tied
        if why := rule(plain, units, names, tokenizer):
            return Verdict(sentence, cited, why)
    if turned := opposite_word(plain, units, tokenizer):
        return Verdict(sentence, cited, turned)
    folded = evidence.lower()
    for part in (plain, *CLAUSE.findall(plain)):
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
