"""Which sentences an answer cites: the best one, and others only while they add evidence."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from ..config import Settings
from ..index.split import split_sentences
from ..stores.data import Passages
from ..types import Citation, Sentence, Span
from .retrieve import Scored
from .sentences import Candidate, SentencePicker, cheap_answer_type, points_back

MORE_SENTENCES = 5  # candidate sentences kept beside the answer (Answer.more)
# Cited by the clause that holds the answer when longer than this (policy papers, rulings).
LONG_SENTENCE = 120
READ_CANDIDATES = 3  # the picker's best sentences the reader reads (4 or 5 chose the same)
READ_PRIOR = 2.0  # log-odds a candidate must beat the picker's better-ranked ones by
MIN_CLAUSE = 16  # a clause shorter than this is cited with its neighbours
_CLAUSE_END = re.compile(r"[；，：;,:]")


@dataclass(frozen=True)
class Cited:
    """The sentences an answer cites, and the next best ones (its "related sentences");
    `phrase`: the answer phrase the reader marked in the first one, if any."""

    citations: tuple[Citation, ...]
    more: tuple[Citation, ...]
    phrase: str = ""


def sentences_of(hits: list[Scored], passages: Passages) -> list[Sentence]:
    """Every sentence of the passages `hits`."""
    out = []
    for hit in hits:
        paragraph = passages.paragraph_at(hit.row)
        title = passages.article_at(hit.row).title
        for s in passages.passage(hit.row).sentences:
            text = paragraph[s.start : s.end]
            out.append(Sentence(hit.row, s.start, s.end, text, title, hit.score))
    return out


def cite(
    question: str,
    terms: list[str],
    hits: list[Scored],
    passages: Passages,
    picker: SentencePicker,
    settings: Settings,
) -> Cited:
    """The sentences of the passages `hits` that answer `question`, best first.

    The best sentence is always cited; another only while its score stays within
    `citation_margin` of the best: one sentence where one suffices; once the best holds the
    number or date the question asks for, none without one is cited. A cited sentence that
    opens by pointing back (这一年, 他 ...) is cited with the sentence before it, and a next
    sentence that opens that way is cited with it too (docs/how-it-works.md, "Concise
    answers"). The neighbours are those of the whole paragraph, across passage windows.
    """
    cited: list[Citation] = []
    more: list[Citation] = []
    seen: set[str] = set()
    kind = cheap_answer_type(question)
    first_has_kind = False  # the best sentence holds the number or date asked for
    for cand in rank(question, terms, hits, passages, picker):
        if cand.text in seen:  # cited already, as a neighbour
            continue
        seen.add(cand.text)
        close = not cited or cand.score >= cited[0].score - settings.citation_margin
        if close and first_has_kind:  # then one without a number (date) adds no evidence
            close = picker.has_type(cand.text, kind, question)
        if not cited and kind:
            first_has_kind = picker.has_type(cand.text, kind, question)
        if close and not more and len(cited) < settings.max_citations:
            start, end = _with_neighbours(passages.paragraph_at(cand.row), cand, seen)
            cited.append(_citation(passages, cand.row, start, end, cand.score))
        elif len(more) < MORE_SENTENCES:
            more.append(_citation(passages, cand.row, cand.start, cand.end, cand.score))
        else:
            break
    return Cited(tuple(cited), tuple(more))


def rank(
    question: str, terms: list[str], hits: list[Scored], passages: Passages, picker: SentencePicker
) -> list[Candidate]:
    """The distinct sentences of the passages `hits`, best first by the picker's score."""
    seen: set[str] = set()
    out = []
    for cand in picker.rank(question, terms, sentences_of(hits, passages)):
        if cand.text not in seen:
            seen.add(cand.text)
            out.append(cand)
    return out


def _chosen(cand: Candidate, phrase: tuple[int, int], passages: Passages, score: float) -> Citation:
    """The citation of the sentence the reader chose, with its phrase [start, end) (offsets
    into the candidate's text): a sentence longer than LONG_SENTENCE is cited by the clause
    that holds the phrase, with the whole sentence as its context; a short one with the
    sentence before it when it points back, as `cite` does."""
    paragraph = passages.paragraph_at(cand.row)
    has_phrase = phrase[1] > phrase[0]
    at = (cand.start + phrase[0], cand.start + phrase[1]) if has_phrase else (None, None)
    if len(cand.text) > LONG_SENTENCE:
        start, end = clause(cand.text, *phrase)
        citation = _citation(passages, cand.row, cand.start + start, cand.start + end, score)
        return replace(
            citation,
            phrase_start=at[0],
            phrase_end=at[1],
            sentence_start=cand.start,
            sentence_end=cand.end,
        )
    start, end = _with_neighbours(paragraph, cand, {cand.text})
    citation = _citation(passages, cand.row, start, end, score)
    return replace(citation, phrase_start=at[0], phrase_end=at[1])


def clause(sentence: str, start: int, end: int) -> tuple[int, int]:
    """The clause of `sentence` (split after ；，：;,:) that holds [start, end), widened
    over its neighbours until it holds at least MIN_CLAUSE characters, without the mark
    that ends it (a [n] marker follows it in the answer)."""
    cuts = [0] + [m.end() for m in _CLAUSE_END.finditer(sentence)] + [len(sentence)]
    cuts = sorted(set(cuts))
    spans = list(zip(cuts, cuts[1:], strict=False))
    first = next((k for k, (a, b) in enumerate(spans) if a <= start < b), 0)
    last = next((k for k, (a, b) in enumerate(spans) if a < end <= b), first)
    last = max(last, first)
    while spans[last][1] - spans[first][0] < MIN_CLAUSE and (first > 0 or last < len(spans) - 1):
        if first > 0:
            first -= 1
        if spans[last][1] - spans[first][0] < MIN_CLAUSE and last < len(spans) - 1:
            last += 1
    begin, finish = spans[first][0], spans[last][1]
    if finish - begin > 1 and _CLAUSE_END.fullmatch(sentence[finish - 1]):
        finish -= 1
    return begin, finish


def _with_neighbours(paragraph: str, cand, seen: set[str]) -> tuple[int, int]:
    """The extent of a cited sentence: with the sentence before it when it points back to
    it, and with the next one when that one points back (each cited once: `seen`)."""
    start, end = cand.start, cand.end
    before, after = _neighbours(paragraph, cand.start, cand.end)
    if before and points_back(cand.text):
        text = paragraph[before.start : before.end]
        if text not in seen:
            start = before.start
            seen.add(text)
    if after:
        text = paragraph[after.start : after.end]
        if text not in seen and points_back(text):
            end = after.end
            seen.add(text)
    return start, end


def _citation(passages: Passages, row: int, start: int, end: int, score: float) -> Citation:
    article = passages.article_at(row)
    paragraph = passages.passage(row).paragraph
    return Citation(
        article_id=article.id,
        title=article.title,
        paragraph=paragraph,
        sentence=article.paragraphs[paragraph][start:end],
        start=start,
        end=end,
        score=round(score, 4),
        page=article.page(paragraph),
        url=article.url,
    )


def _neighbours(paragraph: str, start: int, end: int) -> tuple[Span | None, Span | None]:
    """The sentences of `paragraph` just before `start` and just after `end`, if any."""
    spans = split_sentences(paragraph)
    before = [s for s in spans if s.end <= start]
    after = [s for s in spans if s.start >= end]
    return (before[-1] if before else None), (after[0] if after else None)


def cite_reading(
    question: str, ranked: list[Candidate], passages: Passages, reader, threshold: float
) -> Cited:
    """The answer the reader (qa/answer/reading.py) finds among the picker's best sentences
    `ranked`: the one it scores highest (READ_PRIOR favours the picker's order), cited with
    its phrase (`_chosen`), the others as related sentences; nothing when that one scores
    below `threshold`."""
    top = ranked[:READ_CANDIDATES]
    if not top:
        return Cited((), ())
    windows = []
    for cand in top:
        paragraph = passages.paragraph_at(cand.row)
        before, after = _neighbours(paragraph, cand.start, cand.end)
        windows.append(
            (
                paragraph[before.start : before.end] if before else "",
                cand.text,
                paragraph[after.start : after.end] if after else "",
            )
        )
    readings = reader.read(question, windows)
    # The reader overrides the picker's order only when it is much surer: each place lower in
    # the picker's ranking costs READ_PRIOR in the reader's log-odds (on DRCD, with the reader
    # trained without it: sentence Hit@1 0.82 against 0.72 on the reader's scores alone).
    order = sorted(range(len(top)), key=lambda k: READ_PRIOR * k - _log_odds(readings[k].score))
    best, reading = order[0], readings[order[0]]
    if reading.score < threshold:
        return Cited((), ())
    cand = top[best]
    citation = _chosen(cand, (reading.start, reading.end), passages, reading.score)
    # the related sentences: the rest in the order read, each with the picker's score as
    # without the reader; none the citation already holds (a neighbour pointed back to)
    others = [top[k] for k in order[1:]] + ranked[len(top) :]
    more = tuple(
        _citation(passages, c.row, c.start, c.end, c.score)
        for c in others
        if c.row != cand.row or not citation.start <= c.start < citation.end
    )
    return Cited((citation,), more[:MORE_SENTENCES], cand.text[reading.start : reading.end])


def _log_odds(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
