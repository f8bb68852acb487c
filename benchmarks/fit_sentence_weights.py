"""Fit the sentence-choice weights (qa.answer.sentences.WEIGHTS) on a SQuAD-format file.

    python benchmarks/fit_sentence_weights.py ../shared/data/cmrc2018/cmrc2018_trial.json

Fit on one file (the CMRC trial set) and judge with `qa eval` on others (CMRC dev, DRCD dev),
so the reported figures are not measured on the data the weights were fitted to.

The model is a conditional logit: per question, a softmax over its candidate sentences, and
the loss is minus the log of the probability given to the sentences that hold a reference
answer. It fits what the answerer does (pick the best sentence of each question) better than
a logistic regression over all sentences at once. Needs scipy (installed with
sentence-transformers).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import qa
from qa.answer.sentences import WEIGHTS
from qa.eval.evaluate import read_squad


def features(data: str, index: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row of WEIGHTS' features per candidate sentence, its label and its question."""
    records, questions = read_squad(data)
    names = list(WEIGHTS)
    X, y, group = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        (corpus / "contexts.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
        folder = Path(index or Path(tmp) / "index")
        qa.build(corpus, folder)
        bot = qa.load(folder)
        for n, q in enumerate(questions):
            found = bot.candidate_sentences(q.question)
            for f, s in zip(found.signals, found.sentences, strict=True):
                X.append([f[k] for k in names])
                y.append(any(a in s.text for a in q.answers))
                group.append(n)
    return np.asarray(X), np.asarray(y, dtype=float), np.asarray(group)


def fit(X: np.ndarray, y: np.ndarray, group: np.ndarray, l2: float = 0.001) -> np.ndarray:
    """Conditional-logit weights over the questions with at least one answering sentence."""
    from scipy.optimize import minimize

    answerable = np.bincount(group, weights=y)[group] > 0
    X, y = X[answerable], y[answerable]
    _, g = np.unique(group[answerable], return_inverse=True)
    groups = g.max() + 1

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = X @ w
        top = np.full(groups, -np.inf)
        np.maximum.at(top, g, s)
        e = np.exp(s - top[g])
        p = e / np.bincount(g, weights=e, minlength=groups)[g]
        right = np.bincount(g, weights=p * y, minlength=groups)
        px = p[:, None] * X
        on_right = np.zeros((groups, X.shape[1]))
        np.add.at(on_right, g, px * y[:, None])
        on_all = np.zeros((groups, X.shape[1]))
        np.add.at(on_all, g, px)
        grad = (on_all - on_right / (right[:, None] + 1e-12)).sum(0) / groups + 2 * l2 * w
        return float(-np.log(right + 1e-12).sum() / groups + l2 * (w @ w)), grad

    return minimize(loss, np.ones(X.shape[1]), jac=True, method="L-BFGS-B").x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("data")
    ap.add_argument("--index", help="keep the index here (reruns re-embed nothing)")
    args = ap.parse_args()
    X, y, group = features(args.data, args.index)
    weights = dict(zip(WEIGHTS, np.round(fit(X, y, group), 2).tolist(), strict=True))
    print(f"{group.max() + 1} questions, {len(y)} candidate sentences", file=sys.stderr)
    print("WEIGHTS =", weights)


if __name__ == "__main__":
    main()
