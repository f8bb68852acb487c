"""Fit the sentence-choice weights (qa.answer.WEIGHTS) on a SQuAD-format file.

    python benchmarks/fit_sentence_weights.py ../shared/data/cmrc2018/cmrc2018_trial.json

Fit on one file (the CMRC trial set) and judge with `qa eval` on another (the dev set), so
the reported figures are not measured on the data the weights were fitted to.
Needs scikit-learn (installed with sentence-transformers).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import qa
from qa.answer import WEIGHTS
from qa.evaluate import read_squad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("data")
    ap.add_argument("--index", help="keep the index here (reruns re-embed nothing)")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression

    records, questions = read_squad(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        (corpus / "contexts.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
        index = Path(args.index or Path(tmp) / "index")
        qa.build(corpus, index)
        bot = qa.load(index)
        names = list(WEIGHTS)
        X, y, group = [], [], []
        for n, q in enumerate(questions):
            hits, terms, _ = bot._search(q.question, 20)
            sentences = bot._sentences(hits[: bot.settings.answer_passages])
            features = bot.picker.features(q.question, terms, sentences, tag_all=True)
            for f, s in zip(features, sentences, strict=True):
                X.append([f[k] for k in names])
                y.append(any(a in s[3] for a in q.answers))
                group.append(n)
    X, y = np.asarray(X), np.asarray(y)
    model = LogisticRegression(max_iter=2000).fit(X, y)
    weights = dict(zip(names, np.round(model.coef_[0], 2).tolist(), strict=True))
    print(f"{len(questions)} questions, {len(y)} candidate sentences", file=sys.stderr)
    print("WEIGHTS =", weights)


if __name__ == "__main__":
    main()
