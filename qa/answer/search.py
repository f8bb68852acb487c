"""The retrieval step of answering: a question's best passages, its words and its vector."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..index.embed import Embedder
from ..index.script import match_script
from ..index.tokenize import Tokenizer
from ..stores.data import Passages
from ..types import Passage
from .retrieve import Retriever, Scored


@dataclass(frozen=True)
class Searched:
    """What one search found: the question in the articles' script, the best passages, the
    question's words (without character grams) and its vector."""

    query: str
    hits: list[Scored]
    terms: list[str]
    vector: np.ndarray


class Searcher:
    """Hybrid search over one index, in the articles' own script."""

    def __init__(
        self, retriever: Retriever, passages: Passages, embedder: Embedder, tokenizer: Tokenizer
    ):
        self.retriever, self.passages = retriever, passages
        self.embedder, self.tokenizer = embedder, tokenizer

    def search(self, question: str, k: int) -> Searched:
        """The best `k` passages for `question` (checked already), best first."""
        query = match_script(question, self.passages.char_df)  # 臺灣 asked of 台湾 articles
        vector = self.embedder.encode([query])[0]
        terms = self.tokenizer.query_terms(query)
        hits = self.retriever.search(vector, terms + self.tokenizer.question_grams(query), k)
        return Searched(query, hits, terms, vector)

    def distinct(self, hits: list[Scored], k: int) -> list[Scored]:
        """The best window of each paragraph, so one long paragraph fills one slot."""
        seen: set[tuple[str, int]] = set()
        out = []
        for hit in hits:
            key = self.place(hit)
            if key not in seen:
                seen.add(key)
                out.append(hit)
        return out[:k]

    def preferring(
        self, hits: list[Scored], prefer: Mapping[tuple[str, int], float] | None
    ) -> list[Scored]:
        """`hits` re-ranked with `prefer`'s bonus (by (article id, paragraph)) added to the
        scores of the paragraphs it names: in a conversation, those the last answer cited."""
        if not prefer:
            return hits
        boosted = (
            dataclasses.replace(h, score=h.score + prefer.get(self.place(h), 0)) for h in hits
        )
        return sorted(boosted, key=lambda h: -h.score)

    def place(self, hit: Scored) -> tuple[str, int]:
        """(article id, paragraph) of the hit's passage."""
        return self.passages.article_at(hit.row).id, int(self.passages.paragraph[hit.row])

    def passage(self, hit: Scored) -> Passage:
        """The hit as the public search result."""
        article, passage = self.passages.article_at(hit.row), self.passages.passage(hit.row)
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
