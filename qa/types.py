"""The values that cross module borders: frozen dataclasses, nothing else."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


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

    def page(self, paragraph: int) -> int | None:
        """The page paragraph `paragraph` starts on (PDF articles), else None.

        Kept in the metadata as PAGES_KEY (so every index stores it as it stores the rest):
        "paragraph:page" where a new page begins, e.g. "0:1 3:2 8:4".
        """
        runs = dict(self.metadata).get(PAGES_KEY)
        if not runs:
            return None
        page = None
        for run in runs.split():
            first, _, number = run.partition(":")
            if not (first.isdigit() and number.isdigit()) or int(first) > paragraph:
                break
            page = int(number)
        return page

    @property
    def url(self) -> str | None:
        """The article's http(s) address from its metadata, if it has one."""
        url = dict(self.metadata).get("url", "")
        return url if url.lower().startswith(("http://", "https://")) else None

    def record(self) -> dict:
        """What a store keeps of the article besides its id and paragraphs (JSON)."""
        return {"title": self.title, "source": self.source, "metadata": dict(self.metadata)}

    @staticmethod
    def from_record(id: str, record: dict, paragraphs) -> Article:
        """The article a store's `record()` and paragraphs describe."""
        return Article(
            id=id,
            title=record["title"],
            paragraphs=tuple(paragraphs),
            source=record["source"],
            metadata=tuple((k, str(v)) for k, v in record["metadata"].items()),
        )


PAGES_KEY = "pages"


def page_runs(pages: tuple[int, ...]) -> str:
    """The PAGES_KEY value for paragraphs that start on `pages` (see Article.page)."""
    return " ".join(f"{i}:{page}" for i, page in enumerate(pages) if i == 0 or pages[i - 1] != page)


@dataclass(frozen=True)
class Span:
    """A sentence inside a passage: `start`/`end` are offsets into the paragraph text."""

    start: int
    end: int


@dataclass(frozen=True)
class IndexedPassage:
    """A passage as the index holds it: a paragraph, or a window of sentences of a long one
    (`Passage` is the same passage found by a search, with its title and score).

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
class Sentence:
    """A sentence of a retrieved passage, a candidate for the answer:
    `text == paragraph_text[start:end]`."""

    row: int  # the passage's row in the index
    start: int
    end: int
    text: str
    title: str  # of the passage's article
    passage_score: float  # the passage's retrieval score


@dataclass(frozen=True)
class Passage:
    """A retrieved passage with its article title and retrieval score (higher is better)."""

    article_id: str
    title: str
    paragraph: int
    text: str
    start: int
    end: int
    score: float
    page: int | None = None  # the page the paragraph starts on, for PDF articles


@dataclass(frozen=True)
class Citation:
    """One cited source sentence: `sentence == paragraph_text[start:end]`. With the reader,
    a long sentence is cited by its clause: `sentence` is then the clause, and
    `sentence_start`/`sentence_end` give the whole sentence. `score`: the picker's score of
    the sentence, or the reader's probability for the one the reader cited."""

    article_id: str
    title: str
    paragraph: int
    sentence: str
    start: int
    end: int
    score: float
    page: int | None = None  # the page the paragraph starts on, for PDF articles
    url: str | None = None  # the article's http(s) address (web pages), if known
    # The answer phrase the reader marked (qa/answer/reading.py), offsets into the paragraph
    # like start/end; None without one.
    phrase_start: int | None = None
    phrase_end: int | None = None
    # When only a clause of a long sentence is cited: the whole sentence, for showing it as
    # context (offsets into the paragraph); None when the sentence itself is cited.
    sentence_start: int | None = None
    sentence_end: int | None = None


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
    # subject of earlier turns (qa/answer/conversation.py). Empty means the question.
    searched: str = ""
    # Generated answers (qa/generate/llm.py): True when `text` was written by a language model and
    # verified; the reply sentences that failed verification; why the extractive answer was
    # kept instead, when a model was asked and could not be used.
    generated: bool = False
    unsupported: tuple[str, ...] = ()
    note: str = ""
    # The short answer the reader marked in the first citation (900万, 2019年4月); "" when
    # there is none, the question was refused, or the reader is off.
    phrase: str = ""

    def __post_init__(self):
        if not self.searched:
            object.__setattr__(self, "searched", self.question)

    def to_dict(self) -> dict:
        """The answer as JSON data, the one shape `qa ask --json` and the app's `/ask` API
        print (docs/usage.md, "The JSON of an answer"): each citation with its marker's
        number `n`; `more` holds the related sentences, which no marker points at."""
        return {
            "question": self.question,
            "searched": self.searched,
            "text": self.text,
            "phrase": self.phrase,
            "found": self.found,
            "generated": self.generated,
            "note": self.note,
            "citations": [{"n": n, **asdict(c)} for n, c in enumerate(self.citations, 1)],
            "unsupported": list(self.unsupported),
            "more": [asdict(c) for c in self.more],
            "passages": [asdict(p) for p in self.passages],
            "seconds": round(self.seconds, 4),
        }

    def to_text(self) -> str:
        """The answer as a chat reply: its text with the [n] markers, then the numbered
        sources, one a line (the content of /v1's replies and of MCP's `ask`)."""
        lines = [self.text]
        if self.citations:
            lines.append("")
        for n, c in enumerate(self.citations, 1):
            page = f"第{c.page}页 " if c.page else ""
            lines.append(
                f"[{n}] {c.title} — {c.article_id}, {page}第{c.paragraph + 1}段: {c.sentence}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class Partial:
    """A generated reply as it streams: its text so far, not yet verified."""

    text: str


@dataclass(frozen=True)
class Final:
    """The end of a stream: the answer, verified when a model wrote it."""

    answer: Answer


@dataclass(frozen=True)
class BuildStats:
    """What `qa.build` did."""

    added: int
    changed: int
    removed: int
    unchanged: int
    articles: int
    paragraphs: int
    embedded: int  # passages whose vectors were computed in this build (the rest were reused)
    seconds: float
    skipped: tuple[str, ...] = field(default=())  # files that could not be read, with the reason
    # files or records read with a change worth knowing (bytes replaced, an id renamed)
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class IndexInfo:
    """What a loaded index holds and how it was made (for a status line or a report)."""

    model: str
    backend: str
    dim: int
    built_at: str
    articles: int
    paragraphs: int
    passages: int


@dataclass(frozen=True)
class StoredArticle:
    """An article as indexed, with the content hash a rebuild compares."""

    article: Article
    hash: str

    @property
    def id(self) -> str:
        return self.article.id

    @property
    def paragraph_count(self) -> int:
        return len(self.article.paragraphs)


@dataclass(frozen=True)
class KeptArticle:
    """An article a build did not read again (its file is unchanged since the build that
    stored it): the store keeps what it holds of it. Only a store that remembers what was
    read (Manifest.read) gets these."""

    id: str
    hash: str
    paragraph_count: int


@dataclass(frozen=True)
class StoredSettings:
    """The build settings that shape what a store holds: with another value a build splits
    and tokenizes every article again (vectors of unchanged text are still reused)."""

    passage_chars: int  # the longest passage (Settings.passage_chars)
    tokens: str  # the recipe of keyword tokens and passage splitting (qa/build.py: TOKENS)

    def record(self) -> dict:
        """As a manifest stores them (JSON)."""
        return {"passage_chars": self.passage_chars, "tokens": self.tokens}

    @staticmethod
    def from_record(record: dict) -> StoredSettings:
        """The settings a manifest stored; "chunk_chars" is what indexes written before
        passages were called passages name `passage_chars`."""
        chars = record.get("passage_chars", record.get("chunk_chars", 0))
        return StoredSettings(int(chars), str(record.get("tokens", "")))


@dataclass(frozen=True)
class Manifest:
    """What a store says of the index it holds: what a build diffs the corpus against."""

    model: str
    backend: str  # what computed the vectors (see qa/index/onnx.py); vectors of another never mix
    dim: int
    settings: StoredSettings
    hashes: dict[str, str]  # article id -> content hash
    # What the build that wrote it read ({"root", "version", "files"}: qa/read/corpus.py),
    # so the next one need not read unchanged files again; None: not kept by this store
    # (Milvus), or an index written before read.json.
    read: dict | None = None


@dataclass(frozen=True)
class Plan:
    """What a build hands its store to write: every article in corpus order, and the new
    passages of those not `kept` (each with its content key, vector and keyword tokens).

    A kept article's passages stay in the store as they are; every other article's stored
    passages are replaced by the new ones, and articles not listed are removed.
    """

    model: str
    backend: str
    dim: int
    settings: StoredSettings
    articles: tuple[StoredArticle | KeptArticle, ...]
    kept: frozenset[str]  # ids of articles whose stored passages stay
    passages: tuple[IndexedPassage, ...]  # of the other articles, in corpus order
    keys: tuple[bytes, ...]  # content key of each passage's embedded text
    vectors: np.ndarray  # float32 (passages, dim), unit length
    terms: tuple[tuple[str, ...], ...]  # keyword tokens of each passage, its title's included
    built_at: str
    started: float  # time.perf_counter() when the build began
    read: dict | None = None  # what to remember of this read of the corpus (Manifest.read)
