"""A loaded index that answers: `qa.load(folder).ask(question)`."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .answer.background import BACKGROUND
from .answer.sentences import (
    CONFIDENCE,
    NOT_FOUND,
    SentencePicker,
    background_z,
    cheap_answer_type,
    coverage,
    points_back,
    question_chars,
    share,
)
from .config import Settings
from .errors import EmptyQuestionError, IndexMismatchError
from .index.embed import Embedder, backend_of, make_embedder
from .index.retrieve import Retriever, Scored
from .index.script import match_script
from .index.split import split_sentences
from .index.tokenize import Tokenizer
from .stores import Index, open_store
from .types import Answer, Article, Citation, IndexInfo, Passage, Sentence, Span

if TYPE_CHECKING:
    from .answer.conversation import Conversation

MAX_QUESTION_CHARS = 1000  # longer input is cut: a question, not a document
MORE_SENTENCES = 5  # candidate sentences kept beside the answer (Answer.more)
_HAS_TEXT = re.compile(r"\w")


class Assistant:
    """Answers questions from one index. Thread-safe for concurrent `ask` and `search`."""

    def __init__(self, index: Index, settings: Settings, embedder: Embedder | None = None):
        self.index = index
        self.data = data = index.data
        self.settings = settings
        # Questions are embedded the way the index's vectors were, whatever the settings say.
        # Made here, not lazily: two first questions at once must share one model.
        self.embedder = embedder or make_embedder(data.model, settings.batch_size, data.backend)
        self.tokenizer = Tokenizer()
        self.retriever = Retriever(index, settings.dense_weight, settings.candidates)
        self.picker = SentencePicker(
            self.tokenizer, data.char_df, len(data.chunk_article), index.idf_of
        )

    # -- public API -------------------------------------------------------------------

    def search(self, question: str, k: int = 10) -> list[Passage]:
        """The `k` passages most relevant to `question`, best first."""
        question = _check_question(question)
        hits, _, _ = self._search(self._in_corpus_script(question), 2 * k)
        return [self._passage(hit) for hit in self._distinct(hits, k)]

    def ask(
        self, question: str, *, prefer: Mapping[tuple[str, int], float] | None = None
    ) -> Answer:
        """A short answer built from cited source sentences, or found=False when there is none.

        `prefer` maps (article id, paragraph) to a bonus added to that paragraph's retrieval
        score, when it is retrieved, for choosing the sentences to cite: in a conversation the
        paragraphs the previous answer cited stay in view (qa/answer/conversation.py). The retrieved
        passages and the abstention are the question's own.
        """
        began = time.perf_counter()
        question = _check_question(question)
        query = self._in_corpus_script(question)
        hits, terms, vector = self._search(query, max(20, self.settings.answer_passages))
        passages = tuple(self._passage(h) for h in self._distinct(hits, 10))
        if (
            not hits
            or self.confidence(query, hits[0], terms, vector) < self.settings.min_confidence
        ):
            return Answer(question, NOT_FOUND, False, (), passages, time.perf_counter() - began)
        read = hits
        if prefer:  # changes which sentences are read and cited, not what was retrieved
            bonus = prefer.get
            boosted = (
                dataclasses.replace(h, score=h.score + bonus(self._place(h), 0)) for h in hits
            )
            read = sorted(boosted, key=lambda h: -h.score)
        citations, more = self._cite(query, terms, read[: self.settings.answer_passages])
        if not citations:
            return Answer(question, NOT_FOUND, False, (), passages, time.perf_counter() - began)
        text = "".join(f"{c.sentence}[{n}]" for n, c in enumerate(citations, 1))
        return Answer(question, text, True, citations, passages, time.perf_counter() - began, more)

    def chat(self) -> Conversation:
        """A conversation: follow-up questions take their subject from earlier turns."""
        from .answer.conversation import Conversation

        return Conversation(self)

    def paragraph(self, article_id: str, paragraph: int) -> str:
        """The full text of a paragraph, for showing a citation in context."""
        return self.article(article_id).paragraphs[paragraph]

    def title(self, article_id: str) -> str:
        return self.article(article_id).title

    def article(self, article_id: str) -> Article:
        """The article with this id; KeyError if the index has none."""
        return self.index.article(article_id)

    def candidate_sentences(self, question: str) -> tuple[list[Sentence], list[dict[str, float]]]:
        """The sentences an answer to `question` is chosen from, with the signals each is
        scored by (names as in answer.WEIGHTS): what benchmarks/fit_sentence_weights.py fits."""
        query = self._in_corpus_script(_check_question(question))
        hits, terms, _ = self._search(query, 20)
        sentences = self._sentences(hits[: self.settings.answer_passages])
        return sentences, self.picker.features(query, terms, sentences, tag_all=True)

    def best_match(self, question: str) -> tuple[float, str]:
        """The confidence of the question's best passage, as `ask` computes it (compare with
        `settings.min_confidence`), and that passage's article title; (0.0, "") for none."""
        query = self._in_corpus_script(_check_question(question))
        hits, terms, vector = self._search(query, max(20, self.settings.answer_passages))
        if not hits:
            return 0.0, ""
        return self.confidence(query, hits[0], terms, vector), self._title(hits[0])

    def info(self) -> IndexInfo:
        """What the index holds and how it was made: model, build time, counts."""
        return self.data.info()

    # -- internals --------------------------------------------------------------------

    @cached_property
    def _background(self) -> np.ndarray:
        """Vectors of the unrelated sentences of qa/answer/background.py, made on first use."""
        return np.asarray(self.embedder.encode(list(BACKGROUND)), dtype=np.float32)

    def _in_corpus_script(self, question: str) -> str:
        """The question in the articles' script (simplified or traditional), char by char."""
        return match_script(question, self.data.char_df)

    def _search(self, question: str, k: int) -> tuple[list[Scored], list[str], np.ndarray]:
        """The best `k` hits, the question's words (without character grams) and its vector."""
        vector = self.embedder.encode([question])[0]
        terms = self.tokenizer.query_terms(question)
        hits = self.retriever.search(vector, terms + self.tokenizer.question_grams(question), k)
        return hits, terms, vector

    def _distinct(self, hits: list[Scored], k: int) -> list[Scored]:
        """The best window of each paragraph, so one long paragraph fills one slot."""
        seen: set[tuple[int, int]] = set()
        out = []
        for hit in hits:
            passage = self.data.passage(hit.chunk)
            key = (passage.article_id, passage.paragraph)
            if key not in seen:
                seen.add(key)
                out.append(hit)
        return out[:k]

    def confidence(
        self, question: str, best: Scored, terms: list[str], vector: np.ndarray
    ) -> float:
        """How sure we are that the best passage answers the question (about 0..2.5).

        What the passage and its title share with the question, weighted by rarity: its words,
        its characters (a paraphrase keeps some of them) and its character pairs; plus how far
        the passage's dense similarity stands above what this question scores against
        sentences on unrelated everyday topics (qa/answer/background.py). A question about something
        the corpus never mentions misses its rarest words and characters, and its best passage
        scores no higher than unrelated text.
        """
        text = (self._chunk_text(best.chunk) + " " + self._title(best)).lower()
        idf = self.index.idf_of
        words = coverage(terms, set(self.tokenizer.words(text)), idf)
        chars = share({c: self.picker.char_idf(c) for c in question_chars(question)}, set(text))
        pairs = {g for g in self.tokenizer.grams(question) if len(g) == 3}
        present = {g for g in self.tokenizer.grams(text) if len(g) == 3}
        pair_share = share({g: idf(g) for g in pairs}, present)
        z = background_z(vector, best.dense, self._background)
        w = CONFIDENCE
        return w["words"] * words + w["chars"] * chars + w["pairs"] * pair_share + w["dense"] * z

    def _sentences(self, hits: list[Scored]) -> list[Sentence]:
        """Every sentence of the passages `hits`."""
        out = []
        for hit in hits:
            paragraph = self._paragraph_of(hit.chunk)
            title = self._title(hit)
            for s in self.data.passage(hit.chunk).sentences:
                out.append(
                    Sentence(
                        hit.chunk, s.start, s.end, paragraph[s.start : s.end], title, hit.score
                    )
                )
        return out

    def _cite(
        self, question: str, terms: list[str], hits: list[Scored]
    ) -> tuple[tuple[Citation, ...], tuple[Citation, ...]]:
        """The sentences the answer cites, and the next best ones ("related sentences").

        The best sentence is always cited; another only while its score stays within
        `citation_margin` of the best: one sentence where one suffices; once the best holds the
        number or date the question asks for, none without one is cited. A cited sentence that
        opens by pointing back (这一年, 他 ...) is cited with the sentence before it, and a next
        sentence that opens that way is cited with it too (docs/how-it-works.md, "Concise
        answers"). The neighbours are those of the whole paragraph, across passage windows.
        """
        sentences = self._sentences(hits)
        ranked = self.picker.rank(question, terms, sentences)
        cited: list[Citation] = []
        more: list[Citation] = []
        seen: set[str] = set()
        kind = cheap_answer_type(question)
        first_has_kind = False  # the best sentence holds the number or date asked for
        for cand in ranked:
            if cand.text in seen:
                continue
            seen.add(cand.text)
            close = not cited or cand.score >= cited[0].score - self.settings.citation_margin
            if close and first_has_kind:  # then one without a number (date) adds no evidence
                close = self.picker.has_type(cand.text, kind, question)
            if not cited and kind:
                first_has_kind = self.picker.has_type(cand.text, kind, question)
            cite = close and not more and len(cited) < self.settings.max_citations
            start, end, sentence = cand.start, cand.end, cand.text
            if cite:
                paragraph = self._paragraph_of(cand.chunk)
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
                sentence = paragraph[start:end]
            article = self.data.article_at(cand.chunk)
            paragraph_number = self.data.passage(cand.chunk).paragraph
            citation = Citation(
                article_id=article.id,
                title=article.title,
                paragraph=paragraph_number,
                sentence=sentence,
                start=start,
                end=end,
                score=round(cand.score, 4),
                page=article.page(paragraph_number),
                url=article.url,
            )
            if cite:
                cited.append(citation)
            elif len(more) < MORE_SENTENCES:
                more.append(citation)
            else:
                break
        return tuple(cited), tuple(more)

    def _paragraph_of(self, chunk: int) -> str:
        return self.data.paragraph_at(chunk)

    def _chunk_text(self, chunk: int) -> str:
        return self.data.passage(chunk).text

    def _title(self, hit: Scored) -> str:
        return self.data.article_at(hit.chunk).title

    def _place(self, hit: Scored) -> tuple[str, int]:
        d = self.data
        return d.articles[d.chunk_article[hit.chunk]].article.id, int(d.chunk_paragraph[hit.chunk])

    def _passage(self, hit: Scored) -> Passage:
        article, passage = self.data.article_at(hit.chunk), self.data.passage(hit.chunk)
        return Passage(
            article_id=article.id,
            title=article.title,
            paragraph=passage.paragraph,
            text=passage.text,
            start=passage.start,
            end=passage.end,
            score=round(hit.score, 4),
            page=article.page(passage.paragraph),
        )


def _neighbours(paragraph: str, start: int, end: int) -> tuple[Span | None, Span | None]:
    """The sentences of `paragraph` just before `start` and just after `end`, if any."""
    spans = split_sentences(paragraph)
    before = [s for s in spans if s.end <= start]
    after = [s for s in spans if s.start >= end]
    return (before[-1] if before else None), (after[0] if after else None)


def _check_question(question: str) -> str:
    if not isinstance(question, str) or not _HAS_TEXT.search(question):
        raise EmptyQuestionError(
            "The question is empty: type a question in words, e.g. 赣服通集成了多少项服务?"
        )
    # A lone surrogate (JSON "\ud800" decodes to one) would crash tokenizers and models.
    question = question.encode("utf-8", "replace").decode("utf-8")
    return question.strip()[:MAX_QUESTION_CHARS]


def _chosen_model(settings: Settings | None) -> str | None:
    """The model `settings` names (None: any; Settings(min_confidence=0.5) opens any index)."""
    return settings.model if settings is not None else None


def load(
    index: str | Path = "index",
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    model: str | None = None,
) -> Assistant:
    """Open a built index. Raises IndexNotFoundError, IndexCorruptError or IndexMismatchError.

    Questions are embedded by the model the index was built with. Naming another model
    (`model`, a non-default `settings.model`, or `embedder`) is an error rather than a
    silently wrong answer.
    """
    opened = open_store(index).open()  # a folder, or milvus://... (qa/stores/)
    data = opened.data
    if embedder is not None and backend_of(embedder) != data.backend:
        embedder = None  # a reuse hint only: questions are embedded the index's way
    expected = model or (embedder.name if embedder is not None else _chosen_model(settings))
    if expected and expected != data.model:
        raise IndexMismatchError(
            f"The index at {index} was built with the model {data.model!r}, not {expected!r}; "
            f"run `qa build --model {expected}` to rebuild it, or ask with --model {data.model}."
        )
    settings = dataclasses.replace(settings or Settings(), model=data.model)
    return Assistant(opened, settings, embedder)
