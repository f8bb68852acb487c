"""Which sentences an answer cites: the best one, and others only while they add evidence."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from ..index.split import split_sentences
from ..stores.data import Passages
from ..types import Citation, Sentence, Span
from .retrieve import Scored
from .sentences import SentencePicker, cheap_answer_type, points_back

MORE_SENTENCES = 5  # candidate sentences kept beside the answer (Answer.more)


@dataclass(frozen=True)
class Cited:
    """The sentences an answer cites, and the next best ones (its "related sentences")."""

    citations: tuple[Citation, ...]
    more: tuple[Citation, ...]


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
    ranked = picker.rank(question, terms, sentences_of(hits, passages))
    cited: list[Citation] = []
    more: list[Citation] = []
    seen: set[str] = set()
    kind = cheap_answer_type(question)
    first_has_kind = False  # the best sentence holds the number or date asked for
    for cand in ranked:
        if cand.text in seen:
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
