"""Whether to answer at all: how sure we are that the best passage answers the question."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..index.tokenize import Tokenizer
from .retrieve import Scored
from .sentences import question_chars, share

# Confidence that the best passage answers: a weighted sum of what it shares with the question
# (IDF-weighted shares of the question's words, characters and character pairs) and how far its
# dense similarity stands above the question's similarity to unrelated sentences (z, clipped).
# Chosen on CMRC and DRCD together, with out-of-corpus questions, same-subject unanswerable
# questions (`qa eval --same-subject`) and reader-phrased questions about the one-article
# sample (docs/how-it-works.md, "Refusing: abstention").
CONFIDENCE = {"words": 0.6, "chars": 0.4, "pairs": 0.6, "dense": 0.12}
DENSE_Z_RANGE = (-5.0, 8.0)


@dataclass(frozen=True)
class Match:
    """A question's best passage: how sure we are it answers (compare with
    `Settings.min_confidence`) and its article's title."""

    confidence: float
    title: str


def confidence(
    question: str,
    best: Scored,
    text: str,
    terms: list[str],
    vector: np.ndarray,
    background: np.ndarray,
    tokenizer: Tokenizer,
    idf,
    char_idf,
) -> float:
    """How sure we are that the best passage (`best`, whose text and title are `text`) answers
    the question (about 0..2.5).

    What the passage and its title share with the question, weighted by rarity (`idf` of a
    keyword token, `char_idf` of a character): its words, its characters (a paraphrase keeps
    some of them) and its character pairs; plus how far the passage's dense similarity stands
    above what this question scores against sentences on unrelated everyday topics
    (`background`, qa/answer/background.py). A question about something the corpus never
    mentions misses its rarest words and characters, and its best passage scores no higher
    than unrelated text.
    """
    text = text.lower()
    words = coverage(terms, tokenizer.words_among(text, set(terms)), idf)
    chars = share({c: char_idf(c) for c in question_chars(question)}, set(text))
    pairs = {g for g in tokenizer.grams(question) if len(g) == 3}
    # A pair of word characters is one of the text's grams exactly when it is in the text.
    present = {g for g in pairs if g[1:] in text}
    pair_share = share({g: idf(g) for g in pairs}, present)
    z = background_z(vector, best.dense, background)
    w = CONFIDENCE
    return w["words"] * words + w["chars"] * chars + w["pairs"] * pair_share + w["dense"] * z


def background_z(vector, similarity: float, background) -> float:
    """How far `similarity` stands above the question's similarity to unrelated sentences,
    in their standard deviations, clipped to DENSE_Z_RANGE.

    Per question, because m3e scores some questions high against everything; against text
    on other subjects rather than a sample of the corpus, because in a small collection
    about one subject every passage is related (docs/how-it-works.md, "Refusing: abstention").
    """
    sims = np.asarray(background, dtype=np.float32) @ np.asarray(vector, dtype=np.float32)
    if sims.size < 3:
        return 0.0
    z = (similarity - float(sims.mean())) / max(float(sims.std()), 0.01)
    return min(max(z, DENSE_Z_RANGE[0]), DENSE_Z_RANGE[1])


def coverage(terms: list[str], text_words: set[str], word_idf) -> float:
    """Share of the question's terms, weighted by rarity, that occur in a passage."""
    weights = {t: word_idf(t) for t in set(terms)}
    return share(weights, text_words)
