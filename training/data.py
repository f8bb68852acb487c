"""The training recipe: (question, sentence) pairs from SQuAD-format files, deterministic.

Per question: one positive, the sentence holding the answer (with the answer's character
offsets in it), and four negatives (NEGATIVES), none holding any reference answer's text:
  - same-article: 2 from other paragraphs of the same article (DRCD articles have several):
    the same subject, but not this answer; what a reader most needs to refuse;
  - same-paragraph: 1, other sentences of the gold paragraph;
  - other-article: 1, sentences of other articles sharing many characters with the question.
Each kind picks at random among the HARDEST sentences sharing most characters with the
question (TF-IDF over characters); where an article has one paragraph (CMRC), the other two
kinds share the same-article places.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.index.split import split_sentences
from qa.types import Span

NEGATIVES = {"same-article": 2, "same-paragraph": 1, "other-article": 1}
HARDEST = 4  # each negative is drawn from the HARDEST sentences of its kind
SEED = 21

_NOT_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """For comparing questions and answers: NFKC, lower case, no punctuation or spaces."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).lower())


@dataclass(frozen=True)
class Paragraph:
    article: str  # "file:article id", unique across files
    title: str
    text: str
    sentences: tuple[Span, ...]

    def sentence(self, i: int) -> tuple[str, str, str]:
        """(before, sentence, after): sentence i and its neighbours' texts."""
        s = self.sentences
        before = self.text[s[i - 1].start : s[i - 1].end] if i > 0 else ""
        after = self.text[s[i + 1].start : s[i + 1].end] if i + 1 < len(s) else ""
        return before, self.text[s[i].start : s[i].end], after


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    paragraph: int  # index in Corpus.paragraphs
    answers: tuple[str, ...]  # every reference answer's text
    sentence: int  # the gold sentence: holds the first answer's start
    start: int  # the first answer's character offsets in the gold sentence
    end: int


@dataclass(frozen=True)
class Corpus:
    paragraphs: tuple[Paragraph, ...]
    questions: tuple[Question, ...]
    skipped: int  # questions whose answer is not inside one sentence


@dataclass(frozen=True)
class Pair:
    qid: str
    question: str
    before: str
    sentence: str
    after: str
    label: int  # 1: the sentence answers the question
    start: int  # answer offsets in `sentence` (-1 for negatives)
    end: int
    kind: str  # "positive" or a key of NEGATIVES


def _locate(context: str, answer: str, start: int) -> int:
    """The answer's offset: the occurrence of its text nearest the given start (a few CMRC
    offsets are off by some characters), or -1."""
    found = [m.start() for m in re.finditer(re.escape(answer), context)]
    return min(found, key=lambda x: abs(x - start)) if found else -1


def load(paths: list[str | Path]) -> Corpus:
    """Paragraphs and questions of SQuAD-format files, in file order."""
    paragraphs, questions, skipped = [], [], 0
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
        for article in data:
            key = f"{Path(path).name}:{article['id']}"
            for para in article["paragraphs"]:
                text = para["context"]
                spans = split_sentences(text)
                paragraphs.append(Paragraph(key, article.get("title", ""), text, spans))
                for qa in para["qas"]:
                    first = qa["answers"][0]
                    begin = _locate(text, first["text"], first["answer_start"])
                    end = begin + len(first["text"])
                    gold = [i for i, s in enumerate(spans) if s.start <= begin < s.end]
                    if begin < 0 or not gold or end > spans[gold[0]].end:
                        skipped += 1
                        continue
                    offset = spans[gold[0]].start
                    questions.append(
                        Question(
                            qa["id"],
                            qa["question"],
                            len(paragraphs) - 1,
                            tuple(dict.fromkeys(a["text"] for a in qa["answers"])),
                            gold[0],
                            begin - offset,
                            end - offset,
                        )
                    )
    return Corpus(tuple(paragraphs), tuple(questions), skipped)


def question_keys(paths: list[str | Path]) -> tuple[set[str], set[str]]:
    """Ids and normalised texts of every question in the files (answerable or not)."""
    ids, texts = set(), set()
    for path in paths:
        for article in json.loads(Path(path).read_text(encoding="utf-8"))["data"]:
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    ids.add(qa["id"])
                    texts.add(normalise(qa["question"]))
    return ids, texts


def without(corpus: Corpus, ids: set[str], texts: set[str]) -> Corpus:
    """The corpus less questions whose id or normalised text is in `ids`/`texts`."""
    kept = tuple(q for q in corpus.questions if q.id not in ids and normalise(q.text) not in texts)
    return Corpus(corpus.paragraphs, kept, corpus.skipped)


class CharOverlap:
    """TF-IDF cosine over characters between questions and a list of texts."""

    def __init__(self, texts: list[str]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(analyzer="char", sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform(texts)

    def scores(self, questions: list[str]) -> np.ndarray:
        """(questions x texts) similarities; keep `questions` to a few hundred at a time."""
        return (self.vectorizer.transform(questions) @ self.matrix.T).toarray()


class SentenceTable:
    """Every sentence of a corpus in one list, with where it comes from."""

    def __init__(self, corpus: Corpus):
        self.where, self.texts, self.first = [], [], []
        for p, para in enumerate(corpus.paragraphs):
            self.first.append(len(self.where))
            for i, s in enumerate(para.sentences):
                self.where.append((p, i))
                self.texts.append(para.text[s.start : s.end])
        self.first.append(len(self.where))
        self.normalised = [normalise(t) for t in self.texts]
        self.article_paragraphs: dict[str, list[int]] = {}
        for p, para in enumerate(corpus.paragraphs):
            self.article_paragraphs.setdefault(para.article, []).append(p)

    def of(self, paragraph: int) -> range:
        """Indices of a paragraph's sentences."""
        return range(self.first[paragraph], self.first[paragraph + 1])


def build_pairs(corpus: Corpus, seed: int = SEED) -> list[Pair]:
    """One positive and the NEGATIVES of each question (module docstring), shuffled."""
    rng = random.Random(seed)
    table = SentenceTable(corpus)
    overlap = CharOverlap(table.texts)
    pairs = []
    questions = corpus.questions
    for begin in range(0, len(questions), 256):
        batch = questions[begin : begin + 256]
        sims = overlap.scores([q.text for q in batch])
        for q, sim in zip(batch, sims, strict=True):
            pairs.extend(_question_pairs(corpus, q, table, sim, rng))
    rng.shuffle(pairs)
    return pairs


def _question_pairs(corpus, q: Question, table: SentenceTable, sim, rng) -> list[Pair]:
    gold = corpus.paragraphs[q.paragraph]
    before, sentence, after = gold.sentence(q.sentence)
    out = [Pair(q.id, q.text, before, sentence, after, 1, q.start, q.end, "positive")]
    answers = [normalise(a) for a in q.answers if normalise(a)]
    siblings = [p for p in table.article_paragraphs[gold.article] if p != q.paragraph]
    top = np.argpartition(-sim, min(200, len(sim) - 1))[:200]
    own = set(table.of(q.paragraph)) | {k for p in siblings for k in table.of(p)}
    kinds = {
        "same-article": [k for p in siblings for k in table.of(p)],
        "same-paragraph": [k for k in table.of(q.paragraph) if table.where[k][1] != q.sentence],
        "other-article": [int(k) for k in top if k not in own],
    }
    wanted = dict(NEGATIVES)
    for kind in NEGATIVES:
        ranked = sorted(kinds[kind], key=lambda k: -sim[k])
        ranked = [k for k in ranked if not any(a in table.normalised[k] for a in answers)]
        pool = ranked[: max(HARDEST, wanted[kind])]
        chosen = rng.sample(pool, min(wanted[kind], len(pool)))
        if kind == "same-article":  # one paragraph per article (CMRC): the others share
            short = wanted[kind] - len(chosen)
            wanted["other-article"] += (short + 1) // 2
            wanted["same-paragraph"] += short // 2
        for k in chosen:
            p, i = table.where[k]
            b, s, a = corpus.paragraphs[p].sentence(i)
            out.append(Pair(q.id, q.text, b, s, a, 0, -1, -1, kind))
    return out
