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
    page: int | None = None  # the page the paragraph starts on, for PDF articles


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
    page: int | None = None  # the page the paragraph starts on, for PDF articles
    url: str | None = None  # the article's http(s) address (web pages), if known


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
