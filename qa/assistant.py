"""A loaded index that answers: `qa.load(folder).ask(question)`.

The stages of answering live in qa/answer/: search (search.py), whether to answer
(confidence.py), which sentences to cite (sentences.py, cite.py), follow-ups
(conversation.py); with a chat model, qa/generate/ writes the answer from the cited sentences
and checks it. This class holds one index's parts together and is the public face: every way
in (`ask`, `chat()`, the CLI, the app) answers through `stream`.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .answer.background import background_vectors
from .answer.cite import cite, cite_reading, rank, sentences_of
from .answer.confidence import Match, confidence
from .answer.question import check_question
from .answer.reading import load_reader
from .answer.retrieve import Retriever
from .answer.search import Searched, Searcher
from .answer.sentences import NOT_FOUND, SentencePicker, SentenceSignals
from .config import Settings
from .errors import IndexMismatchError
from .generate.llm import ChatModel, generate, make_chat_model
from .index.embed import Embedder, backend_of, make_embedder
from .index.tokenize import Tokenizer
from .stores import Index, open_store
from .types import Answer, Article, Citation, Final, IndexInfo, Partial, Passage

if TYPE_CHECKING:
    from .answer.conversation import Conversation


def _cores() -> int:
    """The cores this process may run on: its CPU affinity (a cpuset, not a CPU quota)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Turns:
    """At most `n` threads inside at once, the others let in in the order they came.

    (threading.Semaphore lets the thread that just left take its place again before a
    waiting one wakes: with 8 askers on 2 places, one waited 1.4 s for its first answer.)
    """

    def __init__(self, n: int):
        self._lock = threading.Lock()
        self._free = n
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    def __enter__(self) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        try:
            turn.acquire()  # released by the thread that hands its place over
        except BaseException:  # Ctrl-C while waiting: a place handed to no one is lost for good
            with self._lock:
                if turn in self._waiting:
                    self._waiting.remove(turn)
                    raise
            self.__exit__()  # handed over meanwhile: on to the next one
            raise

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1


# Finding and citing is CPU work, half of it Python holding the GIL: more answers at once than
# there are cores only make every one slower (8 threads on 2 cores: about 140 answers/s; with
# 2 at a time and the rest waiting their turn here, about 200; benchmarks/load.py). Shared by
# every Assistant of the process, as the cores are. A chat model's reply is written outside.
ANSWERING = Turns(_cores())


class Assistant:
    """Answers questions from one index. Thread-safe for concurrent `ask` and `search`."""

    def __init__(
        self,
        index: Index,
        settings: Settings,
        embedder: Embedder | None = None,
        chat_model: ChatModel | None = None,
    ):
        self.index = index
        self.passages = passages = index.passages
        self.settings = settings
        # Questions are embedded the way the index's vectors were, whatever the settings say.
        # Made here, not lazily: two first questions at once must share one model.
        self.embedder = embedder or make_embedder(
            passages.model, settings.batch_size, passages.backend
        )
        self.tokenizer = Tokenizer()
        retriever = Retriever(index, settings.dense_weight, settings.candidates)
        self.searcher = Searcher(retriever, passages, self.embedder, self.tokenizer)
        self.picker = SentencePicker(self.tokenizer, passages.char_df, len(passages), index.idf_of)
        # The reader model (None: off), shared by every Assistant of the process.
        self.reader = load_reader(settings.reader)
        # None: answers are extractive. Made from the settings unless given (a test's model).
        self.chat_model = make_chat_model(settings) if chat_model is None else chat_model

    def search(self, question: str, k: int = 10) -> list[Passage]:
        """The `k` passages most relevant to `question`, best first."""
        question = check_question(question)
        with ANSWERING:
            hits = self.searcher.search(question, 2 * k).hits
        return [self.searcher.passage(hit) for hit in self.searcher.distinct(hits, k)]

    def ask(
        self, question: str, *, prefer: Mapping[tuple[str, int], float] | None = None
    ) -> Answer:
        """A short answer that cites its source sentences, or found=False when there is none.

        With a chat model (Settings.llm_url, or `qa.load(..., chat_model=...)`) the answer is
        written by the model and every sentence of it checked against its sources
        (qa/generate/llm.py); otherwise it is built from the cited sentences themselves.
        `prefer`: see `extractive`."""
        *_, last = self.stream(question, prefer=prefer)
        return last.answer

    def stream(
        self,
        question: str,
        *,
        prefer: Mapping[tuple[str, int], float] | None = None,
        turns: Sequence[tuple[str, Answer]] = (),
    ) -> Iterator[Partial | Final]:
        """`ask`, for showing a generated reply as it is written: its text so far (Partial)
        while the model writes, then the answer (Final). Without a model, only the Final.
        `turns`: the earlier (question, Answer) turns of a conversation, which the model reads."""
        answer = self.extractive(question, prefer=prefer)
        if self.chat_model is None:
            yield Final(answer)
            return
        yield from generate(answer, self.context, self.chat_model, self.tokenizer, turns)

    def extractive(
        self, question: str, *, prefer: Mapping[tuple[str, int], float] | None = None
    ) -> Answer:
        """The answer built from cited source sentences, never by a model; found=False when
        there is none.

        `prefer` maps (article id, paragraph) to a bonus added to that paragraph's retrieval
        score, when it is retrieved, for choosing the sentences to cite: in a conversation the
        paragraphs the previous answer cited stay in view (qa/answer/conversation.py). The
        retrieved passages and the abstention are the question's own.
        """
        began = time.perf_counter()  # the asker's wait counts, a turn at ANSWERING too
        question = check_question(question)
        with ANSWERING:
            return self._extractive(question, prefer, began)

    def _extractive(
        self, question: str, prefer: Mapping[tuple[str, int], float] | None, began: float
    ) -> Answer:
        found = self.searcher.search(question, max(20, self.settings.answer_passages))
        shown = self.searcher.distinct(found.hits, 10)
        passages = tuple(self.searcher.passage(h) for h in shown)
        if self._confidence(found) < self.settings.min_confidence:
            return Answer(question, NOT_FOUND, False, (), passages, time.perf_counter() - began)
        # `prefer` changes which sentences are read and cited, not what was retrieved.
        read = self.searcher.preferring(found.hits, prefer)[: self.settings.answer_passages]
        if self.reader is None:
            chosen = cite(found.query, found.terms, read, self.passages, self.picker, self.settings)
        else:
            ranked = rank(found.query, found.terms, read, self.passages, self.picker)
            threshold = self.settings.reader_threshold
            if threshold is None:
                threshold = self.reader.threshold
            chosen = cite_reading(found.query, ranked, self.passages, self.reader, threshold)
        if not chosen.citations:
            return Answer(question, NOT_FOUND, False, (), passages, time.perf_counter() - began)
        text = "".join(f"{c.sentence}[{n}]" for n, c in enumerate(chosen.citations, 1))
        seconds = time.perf_counter() - began
        return Answer(
            question, text, True, chosen.citations, passages, seconds, chosen.more,
            phrase=chosen.phrase,
        )  # fmt: skip

    def warm(self) -> None:
        """Load now what the first question would wait for: jieba's word and part-of-speech
        tables (about a second), the model, the background vectors (qa/answer/background.py)."""
        self.tokenizer.tagged("预热")
        self.search("预热")
        self._background  # noqa: B018 (made on first use)

    def chat(self) -> Conversation:
        """A conversation: follow-up questions take their subject from earlier turns."""
        from .answer.conversation import Conversation

        return Conversation(self)

    def article(self, article_id: str) -> Article:
        """The article with this id; KeyError if the index has none."""
        return self.index.article(article_id)

    def paragraph(self, article_id: str, paragraph: int) -> str:
        """The full text of a paragraph, for showing a citation in context."""
        return self.article(article_id).paragraphs[paragraph]

    def context(self, citation: Citation) -> str:
        """The paragraph a citation comes from; its sentence alone if the index no longer
        holds it (an answer kept across a rebuild)."""
        try:
            return self.paragraph(citation.article_id, citation.paragraph)
        except (KeyError, IndexError):
            return citation.sentence

    def info(self) -> IndexInfo:
        """What the index holds and how it was made: model, build time, counts."""
        return self.passages.info()

    def best_match(self, question: str) -> Match:
        """How sure `ask` would be of the question's best passage, and its article's title."""
        k = max(20, self.settings.answer_passages)  # as `ask` searches: the same best hit
        question = check_question(question)
        with ANSWERING:
            found = self.searcher.search(question, k)
            if not found.hits:
                return Match(0.0, "")
            return Match(self._confidence(found), self.passages.article_at(found.hits[0].row).title)

    def candidate_sentences(self, question: str) -> SentenceSignals:
        """The sentences an answer to `question` is chosen from, with the signals each is
        scored by: what benchmarks/fit_sentence_weights.py fits."""
        found = self.searcher.search(check_question(question), 20)
        sentences = sentences_of(found.hits[: self.settings.answer_passages], self.passages)
        features = self.picker.features(found.query, found.terms, sentences, tag_all=True)
        return SentenceSignals(tuple(sentences), tuple(features))

    def _confidence(self, found: Searched) -> float:
        """`confidence` of the best hit (0.0 when nothing was found)."""
        if not found.hits:
            return 0.0
        best = found.hits[0]
        article = self.passages.article_at(best.row)
        text = self.passages.passage(best.row).text + " " + article.title
        return confidence(
            found.query, best, text, found.terms, found.vector, self._background,
            self.tokenizer, self.index.idf_of, self.picker.char_idf,
        )  # fmt: skip

    @cached_property
    def _background(self) -> np.ndarray:
        """Vectors of the unrelated sentences of qa/answer/background.py, made on first use."""
        return background_vectors(self.embedder)


def _chosen_model(settings: Settings | None) -> str | None:
    """The model `settings` names (None: any; Settings(min_confidence=0.5) opens any index)."""
    return settings.model if settings is not None else None


def load(
    index: str | Path = "index",
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    model: str | None = None,
    chat_model: ChatModel | None = None,
) -> Assistant:
    """Open a built index. Raises IndexNotFoundError, IndexCorruptError or IndexMismatchError.

    Questions are embedded by the model the index was built with. Naming another model
    (`model`, a non-default `settings.model`, or `embedder`) is an error rather than a
    silently wrong answer. Answers are generated by `chat_model` when given, else by the
    model `settings.llm_url` names, if any.
    """
    opened = open_store(index).open()  # a folder, or milvus://... (qa/stores/)
    built = opened.passages
    if embedder is not None and backend_of(embedder) != built.backend:
        embedder = None  # a reuse hint only: questions are embedded the index's way
    expected = model or (embedder.name if embedder is not None else _chosen_model(settings))
    if expected and expected != built.model:
        raise IndexMismatchError(
            f"The index at {index} was built with the model {built.model!r}, not {expected!r}; "
            f"run `qa build --model {expected}` to rebuild it, or ask with --model {built.model}."
        )
    settings = dataclasses.replace(settings or Settings(), model=built.model)
    return Assistant(opened, settings, embedder, chat_model)
