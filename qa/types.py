"""The values that cross module borders: frozen dataclasses, nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Article:
    """One article as read from the corpus.

    `id` is the path relative to the corpus folder for files, or the `id` field
    for JSON/JSONL records (then `source` holds the file the record came from).
    """

    id: str
    title: str
    paragraphs: tuple[str, ...]
    source: str = ""  # file the article was read from, relative to the corpus folder
    metadata: tuple[tuple[str, str], ...] = ()  # e.g. (("date", "2019-11-16"), ("url", ...))


@dataclass(frozen=True)
class Span:
    """A sentence inside a passage: `start`/`end` are offsets into the paragraph text."""

    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A retrievable unit: a paragraph, or a window of a long paragraph.

    `start`/`end` locate `text` inside paragraph `paragraph` of the article, so
    paragraph_text[start:end] == text. `sentences` are offsets into the paragraph.
    """

    article_id: str
    paragraph: int
    start: int
    end: int
    text: str
    sentences: tuple[Span, ...]


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its article title and retrieval score (higher is better)."""

    article_id: str
    title: str
    paragraph: int
    text: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Citation:
    """One cited source sentence: `sentence == paragraph_text[start:end]`."""

    article_id: str
    title: str
    paragraph: int
    sentence: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Answer:
    """An answer: `text` carries [n] markers that point at `citations[n-1]`."""

    question: str
    text: str
    found: bool
    citations: tuple[Citation, ...] = ()
    passages: tuple[Passage, ...] = ()
    seconds: float = 0.0
    # The next best sentences, not part of the answer: "related sentences" for the reader.
    more: tuple[Citation, ...] = ()
    # What was actually searched: the question itself, or a follow-up completed with the
    # subject of earlier turns (qa/conversation.py). Empty means the question.
    searched: str = ""
    # Generated answers (qa/llm.py): True when `text` was written by a language model and
    # verified; the reply sentences that failed verification; why the extractive answer was
    # kept instead, when a model was asked and could not be used.
    generated: bool = False
    unsupported: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self):
        if not self.searched:
            object.__setattr__(self, "searched", self.question)


@dataclass(frozen=True)
class BuildStats:
    """What `qa.build` did."""

    added: int
    changed: int
    removed: int
    unchanged: int
    articles: int
    paragraphs: int
    embedded: int  # chunks whose vectors were computed in this build (the rest were reused)
    seconds: float
    skipped: tuple[str, ...] = field(default=())  # files that could not be read, with the reason
    # files or records read with a change worth knowing (bytes replaced, an id renamed)
    notes: tuple[str, ...] = field(default=())
