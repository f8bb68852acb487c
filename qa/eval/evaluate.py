"""`qa eval`: retrieval and answer quality on a SQuAD-format file, with latency."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..answer.reading import normalise
from ..assistant import Assistant, load
from ..build import build
from ..config import Settings
from ..errors import QAError
from ..index.cpu import cpu_flags
from ..index.embed import backend_of, make_embedder
from ..index.split import split_sentences
from ..types import BuildStats

log = logging.getLogger("qa")


@dataclass(frozen=True)
class Question:
    question: str
    article_id: str  # the context that answers it
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """Figures of one `qa eval` run (fractions 0..1, milliseconds)."""

    data: str
    model: str
    articles: int
    questions: int
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    mrr_at_10: float
    sentence_hit_at_1: float
    sentence_hit_at_3: float
    answerable_abstained: float
    negatives: int
    negatives_abstained: float | None
    ask_p50_ms: float
    ask_p95_ms: float
    build_seconds: float
    citations_per_answer: float = 0.0  # over answered answerable questions
    answer_chars: float = 0.0  # mean characters of the cited sentences, same questions
    answer_text_hit: float = 0.0  # a cited sentence holds a reference answer (all questions)
    low_overlap_answered: float = 0.0  # answered, on the quarter least like their paragraph
    backend: str = ""  # what the index was embedded with, and what computed it here
    runtime: str = ""
    fidelity: float | None = None  # int8 backends: mean cosine to fp32 on this machine
    cpu_flags: str = ""  # the CPU features int8 kernels depend on, space-separated
    # --same-subject: questions whose paragraph was left out while the rest of its article
    # stayed in, so the index is about their subject but does not answer them
    same_subject: int = 0
    same_subject_abstained: float | None = None
    # The reader's answer phrase against the reference answers, on answered answerable
    # questions (None: no reader); what read the sentences ("" when no reader).
    phrase_exact: float | None = None
    phrase_f1: float | None = None
    reader: str = ""

    def table(self) -> str:
        rows = [
            ("passages (articles)", f"{self.articles}"),
            ("questions", f"{self.questions}"),
            ("passage Recall@1", f"{self.recall_at_1:.4f}"),
            ("passage Recall@5", f"{self.recall_at_5:.4f}"),
            ("passage Recall@10", f"{self.recall_at_10:.4f}"),
            ("passage MRR@10", f"{self.mrr_at_10:.4f}"),
            ("sentence Hit@1", f"{self.sentence_hit_at_1:.4f}"),
            ("sentence Hit@3", f"{self.sentence_hit_at_3:.4f}"),
            ("answerable abstained", f"{self.answerable_abstained:.4f}"),
            (
                f"out-of-corpus abstained ({self.negatives})",
                "-" if self.negatives_abstained is None else f"{self.negatives_abstained:.4f}",
            ),
            (
                f"same-subject abstained ({self.same_subject})",
                "-"
                if self.same_subject_abstained is None
                else f"{self.same_subject_abstained:.4f}",
            ),
            ("answer-text hit", f"{self.answer_text_hit:.4f}"),
            ("answer phrase exact match", _figure(self.phrase_exact)),
            ("answer phrase character F1", _figure(self.phrase_f1)),
            ("citations per answer", f"{self.citations_per_answer:.2f}"),
            ("answer characters (mean)", f"{self.answer_chars:.1f}"),
            ("answered, low-overlap quarter", f"{self.low_overlap_answered:.4f}"),
            ("ask latency p50 (ms)", f"{self.ask_p50_ms:.1f}"),
            ("ask latency p95 (ms)", f"{self.ask_p95_ms:.1f}"),
            ("index build (s)", f"{self.build_seconds:.1f}"),
            ("embedding", f"{self.backend} (runs as {self.runtime})"),
            ("reader", self.reader or "off"),
            ("int8 fidelity here", "-" if self.fidelity is None else f"{self.fidelity:.4f}"),
            ("CPU flags", self.cpu_flags or "-"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def phrase_scores(phrase: str, answers: tuple[str, ...]) -> tuple[float, float]:
    """Exact match and character F1 of `phrase` against the best of `answers`."""
    got = normalise(phrase)
    exact, best = 0.0, 0.0
    for answer in answers:
        want = normalise(answer)
        exact = max(exact, float(got == want and bool(want)))
        common = sum((Counter(got) & Counter(want)).values())
        if common:
            precision, recall = common / len(got), common / len(want)
            best = max(best, 2 * precision * recall / (precision + recall))
    return exact, best


def read_squad(path: str | Path) -> tuple[list[dict], list[Question]]:
    """Contexts as article records (one per context) and their questions."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        records, questions = [], []
        for a, article in enumerate(raw["data"]):
            for p, para in enumerate(article["paragraphs"]):
                aid = str(para.get("id") or f"{a}-{p}")
                records.append(
                    {"id": aid, "title": article.get("title", ""), "paragraphs": [para["context"]]}
                )
                for qa_ in para["qas"]:
                    if not qa_["question"].strip():
                        continue  # a few published questions are empty: nothing to ask
                    answers = tuple(x["text"] for x in qa_.get("answers", []) if x.get("text"))
                    questions.append(Question(qa_["question"], aid, answers))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QAError(f"{path} is not a readable SQuAD-format file ({exc}).") from None
    return records, questions


def same_subject_split(
    records: list[dict], questions: list[Question]
) -> tuple[list[dict], list[Question], list[Question]]:
    """Every other context of each title with several contexts left out of the index; of
    titles with one context (CMRC's), every other one keeps only its first half of sentences.

    Returns the contexts kept, the questions they answer, and the questions whose reference
    answers occur in no kept text of their title: the index is about their subject (the rest
    of the article is there) but does not answer them.
    """
    by_title: dict[str, list[dict]] = {}
    for r in records:
        by_title.setdefault(r["title"], []).append(r)
    left_out = {r["id"] for group in by_title.values() if len(group) > 1 for r in group[1::2]}
    single = [group[0] for group in by_title.values() if len(group) == 1]
    halved = {r["id"]: _first_half(r) for r in single[1::2]}
    kept = [halved.get(r["id"], r) for r in records if r["id"] not in left_out]
    kept_text: dict[str, str] = {}
    for r in kept:
        kept_text[r["title"]] = kept_text.get(r["title"], "") + "\n".join(r["paragraphs"])
    title = {r["id"]: r["title"] for r in records}

    def answered(q: Question) -> bool:
        return any(a in kept_text.get(title[q.article_id], "") for a in q.answers)

    answerable = [
        q
        for q in questions
        if q.article_id not in left_out and (q.article_id not in halved or answered(q))
    ]
    unanswered = [
        q
        for q in questions
        if (q.article_id in left_out or q.article_id in halved) and q.answers and not answered(q)
    ]
    return kept, answerable, unanswered


def _first_half(record: dict) -> dict:
    """The record with only the first half of its (one) context's sentences."""
    text = record["paragraphs"][0]
    spans = split_sentences(text)
    keep = spans[max(len(spans) // 2, 1) - 1].end if spans else len(text)
    return {**record, "paragraphs": [text[:keep]]}


@contextmanager
def indexed(
    records: list[dict], settings: Settings, index: str | Path | None = None, embedder=None
) -> Iterator[tuple[Assistant, BuildStats]]:
    """`records` (JSON articles) built into `index` (a throw-away folder when None) and loaded."""
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        with open(corpus / "contexts.jsonl", "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        index = index or Path(tmp) / "index"  # a folder or a Milvus address (qa/stores/)
        embedder = embedder or make_embedder(
            settings.build_model, settings.batch_size, settings.backend
        )
        stats = build(corpus, index, settings, embedder=embedder)
        yield load(index, settings, embedder=embedder), stats


def evaluate(
    data: str | Path,
    negatives: str | Path | None = None,
    settings: Settings | None = None,
    index: str | Path | None = None,
    embedder=None,
    limit: int | None = None,
    same_subject: bool = False,
) -> Report:
    """Index the contexts of `data`, ask all its questions (and those of `negatives`).

    With `same_subject`, every other context of each multi-context title is left out of the
    index and its questions are asked as unanswerable ones (`same_subject_split`).
    """
    settings = settings or Settings()
    records, questions = read_squad(data)
    negative_questions = read_squad(negatives)[1] if negatives else []
    unanswered: list[Question] = []
    if same_subject:
        records, questions, unanswered = same_subject_split(records, questions)
    if limit:
        questions, negative_questions = questions[:limit], negative_questions[:limit]
        unanswered = unanswered[:limit]
    with indexed(records, settings, index, embedder) as (bot, stats):
        if bot.reader is not None:
            _check_unseen(bot.reader, questions + negative_questions + unanswered)
        bot.extractive("预热")  # load the model before timing
        report = _score(bot, questions, negative_questions)
        if same_subject:
            refused = sum(not bot.extractive(q.question).found for q in unanswered)
            report["same_subject"] = len(unanswered)
            report["same_subject_abstained"] = refused / len(unanswered) if unanswered else None
    backend = backend_of(bot.embedder)
    reader = bot.reader
    return Report(
        reader="" if reader is None else reader.label,
        data=str(data),
        model=bot.info().model,
        articles=len(records),
        build_seconds=stats.seconds,
        backend=backend,
        runtime=getattr(bot.embedder, "runtime", backend),
        fidelity=getattr(bot.embedder, "fidelity", None) if "int8" in backend else None,
        cpu_flags=" ".join(cpu_flags()),
        **report,
    )


def _check_unseen(reader, questions: list[Question]) -> None:
    """Refuse to measure a reader on questions it was trained on: the figures would flatter it."""
    seen = reader.trained_on([q.question for q in questions])
    if seen is None:
        log.warning("%s has no record of its training questions: they may overlap.", reader.folder)
    elif seen:
        raise QAError(
            f"{len(seen)} of these questions (e.g. {seen[0]!r}) were in the training data of "
            f"the reader in {reader.folder}, so its figures here would flatter it. Measure with "
            f"a reader trained without them (QA_READER=training/out/A for DRCD, .../B for "
            f"CMRC; training/README.md), or without the reader (QA_READER=off)."
        )


def overlap(bot: Assistant, question: Question) -> float:
    """Share of the question's words that occur in the paragraph that answers it."""
    terms = bot.tokenizer.query_terms(question.question)
    words = set(bot.tokenizer.words(" ".join(bot.article(question.article_id).paragraphs)))
    return sum(t in words for t in terms) / max(len(terms), 1)


def _score(bot: Assistant, questions: list[Question], negatives: list[Question]) -> dict:
    ranks, hit1, hit3, abstained, latency = [], 0, 0, 0, []
    text_hit, cited_counts, cited_chars, answered = 0, [], [], []
    phrases: list[tuple[float, float]] = []
    for q in questions:
        began = time.perf_counter()
        answer = bot.extractive(q.question)
        latency.append(time.perf_counter() - began)
        order = list(dict.fromkeys(p.article_id for p in answer.passages))[:10]
        ranks.append(order.index(q.article_id) + 1 if q.article_id in order else None)
        abstained += not answer.found
        cited = [c.sentence for c in answer.citations]
        hit1 += bool(cited) and any(a in cited[0] for a in q.answers)
        hit3 += any(
            a in s for s in (cited + [c.sentence for c in answer.more])[:3] for a in q.answers
        )
        text_hit += any(a in s for s in cited for a in q.answers)
        answered.append(answer.found)
        if answer.found:
            cited_counts.append(len(cited))
            cited_chars.append(sum(map(len, cited)))
            if bot.reader is not None and q.answers:
                phrases.append(phrase_scores(answer.phrase, q.answers))
    neg_abstained = 0
    for q in negatives:
        began = time.perf_counter()
        neg_abstained += not bot.extractive(q.question).found
        latency.append(time.perf_counter() - began)
    n = max(len(questions), 1)
    ms = np.asarray(latency) * 1000

    def recall(k: int) -> float:
        return sum(r is not None and r <= k for r in ranks) / n

    overlaps = np.asarray([overlap(bot, q) for q in questions])
    low = overlaps <= np.quantile(overlaps, 0.25) if overlaps.size else overlaps.astype(bool)
    return {
        "citations_per_answer": float(np.mean(cited_counts)) if cited_counts else 0.0,
        "answer_chars": float(np.mean(cited_chars)) if cited_chars else 0.0,
        "answer_text_hit": text_hit / n,
        "phrase_exact": float(np.mean([e for e, _ in phrases])) if phrases else None,
        "phrase_f1": float(np.mean([f for _, f in phrases])) if phrases else None,
        "low_overlap_answered": float(np.asarray(answered)[low].mean()) if low.any() else 0.0,
        "questions": len(questions),
        "recall_at_1": recall(1),
        "recall_at_5": recall(5),
        "recall_at_10": recall(10),
        "mrr_at_10": sum(1 / r for r in ranks if r) / n,
        "sentence_hit_at_1": hit1 / n,
        "sentence_hit_at_3": hit3 / n,
        "answerable_abstained": abstained / n,
        "negatives": len(negatives),
        "negatives_abstained": neg_abstained / len(negatives) if negatives else None,
        "ask_p50_ms": float(np.percentile(ms, 50)) if ms.size else 0.0,
        "ask_p95_ms": float(np.percentile(ms, 95)) if ms.size else 0.0,
    }


def write_report(report: Report, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(asdict(report), ensure_ascii=False, indent=2) + "\n")
