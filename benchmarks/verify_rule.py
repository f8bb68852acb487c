"""Measure the sentence-verification rule of qa/generate/verify.py on sentences built from DRCD.

For each question, the clause of its paragraph that holds the answer is the model's "reply"
citing that paragraph's sentence as [1]. Faithful variants should pass, perturbed ones fail:

- faithful: the clause as it is; with a lead-in (根据原文,); with the title put in front
- number: one number in the clause changed (n -> n + 1)
- name: one name (person, place, organisation) replaced by a name of the same kind taken
  from another article
- words: two content words replaced by content words from another article
- other: a clause from another article, cited as if it came from this one

    python benchmarks/verify_rule.py ../shared/data/drcd/DRCD_dev.zhs.json [--limit 1000]

Prints the share of sentences that pass, per variant, for several content-word shares.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from qa.generate.verify import Source, check, content_words
from qa.index.split import split_sentences
from qa.index.tokenize import Tokenizer

SHARES = (0.5, 0.6, 0.75, 0.9)
_CLAUSE = re.compile(r"[^，,；;]+")
_NUMBER = re.compile(r"\d+")


def clause_with(sentence: str, answer: str) -> str:
    for c in _CLAUSE.findall(sentence):
        if answer in c and len(c) >= 6:
            return c.strip("。！？ ")
    return sentence.strip("。！？ ")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--limit", type=int, default=1000)
    args = ap.parse_args()
    tok = Tokenizer()
    rng = random.Random(12)
    raw = json.loads(Path(args.data).read_text(encoding="utf-8"))["data"]
    items = []  # (title, paragraph, sentence, clause)
    names: dict[str, list[str]] = {}
    for article in raw:
        for para in article["paragraphs"]:
            context = para["context"]
            spans = split_sentences(context)
            for qa_ in para["qas"]:
                if not qa_.get("answers"):
                    continue
                a = qa_["answers"][0]
                at = a["answer_start"]
                sentence = next(
                    (context[s.start : s.end] for s in spans if s.start <= at < s.end), None
                )
                if sentence:
                    items.append(
                        (article["title"], context, sentence, clause_with(sentence, a["text"]))
                    )
    rng.shuffle(items)
    items = items[: args.limit]
    for _, context, _, _ in items:
        for w, flag in tok.tagged(context):
            if flag in ("nr", "ns", "nt") and len(w) > 1:
                names.setdefault(flag, []).append(w)

    variants: dict[str, list[tuple[str, Source]]] = {
        k: [] for k in ("faithful", "lead-in", "title", "number", "name", "words", "other")
    }
    for i, (title, context, sentence, clause) in enumerate(items):
        src = Source(1, sentence, context, title)
        variants["faithful"].append((clause + "[1]。", src))
        variants["lead-in"].append(("根据原文," + clause + "[1]。", src))
        variants["title"].append((f"{title}:{clause}[1]。", src))
        other_title, other_context, other_sentence, other_clause = items[(i + 7) % len(items)]
        if other_title != title:
            variants["other"].append((other_clause + "[1]。", src))
        nums = _NUMBER.findall(clause)
        if nums:
            n = nums[0]
            variants["number"].append((clause.replace(n, str(int(n) + 1), 1) + "[1]。", src))
        tagged = [(w, f) for w, f in tok.tagged(clause) if f in ("nr", "ns", "nt") and len(w) > 1]
        if tagged:
            w, flag = tagged[0]
            pool = [x for x in names.get(flag, []) if x not in context and w not in x]
            if pool:
                variants["name"].append((clause.replace(w, rng.choice(pool), 1) + "[1]。", src))
        words = content_words(clause, tok)
        foreign = [w for w in content_words(other_context, tok) if w not in context]
        if len(words) >= 3 and len(foreign) >= 2:
            changed = clause
            for w, new in zip(rng.sample(words, 2), rng.sample(foreign, 2), strict=True):
                changed = changed.replace(w, new, 1)
            variants["words"].append((changed + "[1]。", src))

    print(f"{len(items)} DRCD answer sentences; share of sentences that pass the rule")
    print(f"{'variant':<10} {'n':>5} " + " ".join(f"{s:>6}" for s in SHARES))
    for name, rows in variants.items():
        passed = [
            sum(check(text, {1: src}, tok, share).supported for text, src in rows)
            / max(len(rows), 1)
            for share in SHARES
        ]
        print(f"{name:<10} {len(rows):>5} " + " ".join(f"{p:>6.3f}" for p in passed))


if __name__ == "__main__":
    main()
