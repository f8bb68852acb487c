"""Measure a reader offline on held-out SQuAD-format files, without the full system.

    python -m training.measure MODEL_DIR --eval FILE... --foreign FILE... [--limit N]

For each measured question (a deterministic sample of --limit):
  answerable      candidates: the gold paragraph's sentences and those of the two other
                  paragraphs sharing most characters with the question;
  same subject    the gold paragraph removed: the sentences of the article's other paragraphs
                  (DRCD), or of the three nearest other paragraphs where an article has one
                  (CMRC); questions whose answer text is in one of them are left out;
  out of corpus   questions of --foreign files against the three nearest paragraphs.
The threshold keeps at least 0.97 of answerable questions answered; refusal rates are
measured at it. Phrase exact match and character F1 count answered questions whose best
sentence holds the answer. Refuses to measure questions the model was trained on.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data import CharOverlap, Corpus, SentenceTable, load, normalise
from training.reading import Reader

ANSWERED = 0.97  # share of answerable questions the threshold keeps answered


@dataclass(frozen=True)
class Outcome:
    """The reader's best candidate for one question."""

    score: float
    hit: bool  # the best sentence holds the answer (gold sentence or any answer's text)
    exact: float  # phrase exact match (0/1), on hits
    f1: float  # phrase character F1, on hits


def char_f1(predicted: str, answers: tuple[str, ...]) -> tuple[float, float]:
    """Best exact match and character F1 against any reference answer (normalised)."""
    p = normalise(predicted)
    best_em, best_f1 = 0.0, 0.0
    for answer in answers:
        a = normalise(answer)
        common = sum((Counter(p) & Counter(a)).values())
        f1 = 0.0 if common == 0 else 2 * common / (len(p) + len(a))
        best_em, best_f1 = max(best_em, float(p == a)), max(best_f1, f1)
    return best_em, best_f1


def candidates(corpus: Corpus, table: SentenceTable, paragraphs: list[int]):
    """(paragraph, sentence) keys and (before, sentence, after) texts of whole paragraphs."""
    keys, windows = [], []
    for p in paragraphs:
        for k in table.of(p):
            keys.append(table.where[k])
            windows.append(corpus.paragraphs[p].sentence(table.where[k][1]))
    return keys, windows


def read(reader: Reader, question: str, windows):
    before, texts, after = (list(x) for x in zip(*windows, strict=True))
    return reader.read(question, texts, before, after), texts


def nearest(sim: np.ndarray, n: int, skip: set[int]) -> list[int]:
    return [int(p) for p in np.argsort(-sim) if int(p) not in skip][:n]


def answerable(reader, corpus, table, q, sim) -> Outcome:
    keys, windows = candidates(corpus, table, [q.paragraph, *nearest(sim, 2, {q.paragraph})])
    readings, texts = read(reader, q.text, windows)
    best = int(np.argmax([r.score for r in readings]))
    answers = [normalise(a) for a in q.answers]
    hit = keys[best] == (q.paragraph, q.sentence) or any(
        a and a in normalise(texts[best]) for a in answers
    )
    r = readings[best]
    exact, f1 = char_f1(texts[best][r.start : r.end], q.answers) if hit else (0.0, 0.0)
    return Outcome(r.score, hit, exact, f1)


def same_subject(reader, corpus, table, q, sim) -> float | None:
    """The best score without the gold paragraph; None if a candidate holds the answer."""
    article = corpus.paragraphs[q.paragraph].article
    siblings = [p for p in table.article_paragraphs[article] if p != q.paragraph]
    paragraphs = siblings or nearest(sim, 3, {q.paragraph})
    keys, windows = candidates(corpus, table, paragraphs)
    answers = [normalise(a) for a in q.answers if normalise(a)]
    if not windows or any(a in normalise(w[1]) for w in windows for a in answers):
        return None
    readings, _ = read(reader, q.text, windows)
    return max(r.score for r in readings)


def agreement(model: Path, corpus, table, questions, sims) -> dict[str, float]:
    """int8 against fp32 on the answerable candidates of `questions`."""
    quick, exact = (Reader(model, threads=1, runtime=r) for r in ("int8", "fp32"))
    a, b, same_span, same_best = [], [], [], []
    for q, sim in zip(questions, sims, strict=True):
        _, windows = candidates(corpus, table, [q.paragraph, *nearest(sim, 2, {q.paragraph})])
        x, y = read(quick, q.text, windows)[0], read(exact, q.text, windows)[0]
        a += [r.score for r in x]
        b += [r.score for r in y]
        same_span += [(r.start, r.end) == (t.start, t.end) for r, t in zip(x, y, strict=True)]
        same_best.append(np.argmax([r.score for r in x]) == np.argmax([r.score for r in y]))
    return {
        "pairs": len(a),
        "score_correlation": round(float(np.corrcoef(a, b)[0, 1]), 4),
        "max_score_diff": round(float(np.max(np.abs(np.array(a) - np.array(b)))), 4),
        "span_agreement": round(float(np.mean(same_span)), 4),
        "best_sentence_agreement": round(float(np.mean(same_best)), 4),
    }


def check_unseen(model: Path, corpus: Corpus) -> None:
    seen = json.loads((model / "questions.json").read_text(encoding="utf-8"))
    ids, texts = set(seen["ids"]), set(seen["texts"])
    leaked = [q.id for q in corpus.questions if q.id in ids or normalise(q.text) in texts]
    if leaked:
        raise SystemExit(
            f"{len(leaked)} measured questions were in the model's training data "
            f"(e.g. {leaked[:3]}): train with --exclude-ids on these files."
        )


def auc(positive: list[float], negative: list[float]) -> float:
    from sklearn.metrics import roc_auc_score

    if not positive or not negative:
        return float("nan")
    return float(roc_auc_score([1] * len(positive) + [0] * len(negative), [*positive, *negative]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--eval", nargs="+", required=True)
    parser.add_argument("--foreign", nargs="+", required=True, help="out-of-corpus questions")
    parser.add_argument("--limit", type=int, default=600, help="questions per figure")
    parser.add_argument("--runtime", default="auto", choices=["auto", "int8", "fp32"])
    parser.add_argument("--agreement", type=int, default=0, help="int8 vs fp32 on N questions")
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args(argv)

    model = Path(args.model)
    corpus = load(args.eval)
    check_unseen(model, corpus)
    # One thread: spinning onnxruntime threads waste a niced job's CPU on a shared machine.
    reader = Reader(model, threads=1, runtime=args.runtime)
    table = SentenceTable(corpus)
    overlap = CharOverlap([p.text for p in corpus.paragraphs])
    rng = random.Random(0)
    measured = rng.sample(list(corpus.questions), min(args.limit, len(corpus.questions)))
    foreign = load(args.foreign).questions
    foreign = rng.sample(list(foreign), min(args.limit, len(foreign)))

    sims = overlap.scores([q.text for q in measured])
    pairs = list(zip(measured, sims, strict=True))
    outcomes = [answerable(reader, corpus, table, q, s) for q, s in pairs]
    subject = [same_subject(reader, corpus, table, q, s) for q, s in pairs]
    subject = [s for s in subject if s is not None]
    outside = []
    for q, s in zip(foreign, overlap.scores([q.text for q in foreign]), strict=True):
        _, windows = candidates(corpus, table, nearest(s, 3, set()))
        outside.append(max(r.score for r in read(reader, q.text, windows)[0]))

    scores = np.array([o.score for o in outcomes])
    threshold = float(np.quantile(scores, 1 - ANSWERED, method="lower"))
    kept = [o for o in outcomes if o.score >= threshold]
    phrased = [o for o in kept if o.hit]
    figures = {
        "model": str(model),
        "runtime": reader.runtime,
        "eval": [Path(f).name for f in args.eval],
        "questions": len(outcomes),
        "threshold": round(threshold, 4),
        "answered": round(len(kept) / len(outcomes), 3),
        "hit_at_1": round(float(np.mean([o.hit for o in outcomes])), 3),
        "hit_at_1_answered": round(float(np.mean([o.hit for o in kept])), 3),
        "phrase_exact": round(float(np.mean([o.exact for o in phrased])), 3),
        "phrase_char_f1": round(float(np.mean([o.f1 for o in phrased])), 3),
        "same_subject_questions": len(subject),
        "same_subject_refused": round(float(np.mean(np.array(subject) < threshold)), 3),
        "same_subject_auc": round(auc(list(scores), subject), 3),
        "out_of_corpus_questions": len(outside),
        "out_of_corpus": [Path(f).name for f in args.foreign],
        "out_of_corpus_refused": round(float(np.mean(np.array(outside) < threshold)), 3),
        "out_of_corpus_auc": round(auc(list(scores), outside), 3),
    }
    if args.agreement:
        n = args.agreement
        figures["int8_vs_fp32"] = agreement(model, corpus, table, measured[:n], sims[:n])
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
