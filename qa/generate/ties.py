"""Where a reply's facts sit in its sources: a number with the name and the word it belongs
to, two names in their order, the facts of one clause in one source sentence."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

from ..index.tokenize import Tokenizer
from .numbers import Number, blank_numbers, numbers_in
from .words import CLAUSE, CLAUSE_END, content_words, names_of

NEXT_TO = 2  # characters at most between a number and the word it counts (10亿的大单)
# A word across these is not what a number counts: 服务和112种, 篮网队在2002年
_JOINS = frozenset("和与及或并同跟、在于从到自至")
_NAME_GLUE = frozenset("的之各")  # what may stand between a word and the name it precedes


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
    clauses = [c.strip(" 。！？!?") for c in CLAUSE.findall(plain)]
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
            if not CLAUSE_END.search(unit, lo, hi):
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
    text = CLAUSE_END.split(plain[max(0, start - NEXT_TO - 8) : start])[-1]
    earlier = numbers_in(text)
    words = content_words(text[earlier[-1].end :] if earlier else text, tokenizer)
    if words and (at := text.lower().rfind(words[-1])) >= 0:
        gap = text[at + len(words[-1]) :]
        if len(gap) <= NEXT_TO:
            found.append((words[-1], gap, False))
    text = CLAUSE_END.split(plain[end : end + NEXT_TO + 8], 1)[0]
    later = numbers_in(text)
    words = content_words(text[: later[0].start] if later else text, tokenizer)
    if words and 0 <= (at := text.lower().find(words[0])) <= NEXT_TO:
        found.append((words[0], text[:at], True))
    return found


def _clause_around(unit: str, start: int, end: int) -> str:
    """The clause of a source sentence that holds unit[start:end] (lowercased)."""
    lo = max((m.end() for m in CLAUSE_END.finditer(unit, 0, start)), default=0)
    hi = CLAUSE_END.search(unit, end)
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
        begins = max((m.end() for m in CLAUSE_END.finditer(plain, 0, n.start)), default=0)
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
    for clause in CLAUSE.findall(plain):
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
