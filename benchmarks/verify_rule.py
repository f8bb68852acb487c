"""Measure the sentence-verification rule of qa/generate/verify.py on sentences built from DRCD.

For each question, the clause of its paragraph that holds the answer is the model's "reply"
citing that paragraph's sentence as [1]. Faithful variants should pass, perturbed ones fail:

- faithful: the clause as it is; with a lead-in (根据原文,); with the title put in front;
  joined: after the first clause of its sentence (its subject, often), when it is not that one
- number: one number in the clause changed (n -> n + 1)
- name: one name (person, place, organisation) replaced by a name of the same kind taken
  from another article
- words: two content words replaced by content words from another article
- other: a clause from another article, cited as if it came from this one
- para-number, para-name: the clause's first number (name) replaced by one from another
  sentence of the same paragraph (the model read the whole paragraph)
- sent-number, sent-name: ... by one from another clause of the same sentence
- antonym: a word turned into its opposite (增加 -> 减少, 之前 -> 之后, 多 -> 少 ...)
- pronoun-carried: two sentences, the second opening with 它 where another article's clause
  opened with its subject, citing that article: 它 now stands for the first sentence's
  subject (腾讯云…[1]。它已突破900万用户[2]); pronoun-faithful: the same with the
  clause's own subject in the first sentence (X…[1]。它…[1])

    python benchmarks/verify_rule.py ../shared/data/drcd/DRCD_dev.zhs.json [--limit 1000]

Prints the share of sentences that pass, per variant, for several content-word shares (the
two-sentence pronoun replies are read by `verify` at its default share).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from qa.generate.verify import Source, check, split_reply, verify
from qa.generate.words import content_words
from qa.index.split import split_sentences
from qa.index.tokenize import Tokenizer

SHARES = (0.5, 0.6, 0.75, 0.9)
_CLAUSE = re.compile(r"[^，,；;]+")
_NUMBER = re.compile(r"\d+")
NAMES = ("nr", "ns", "nt")
# The opposites the antonym variant writes (the rule's own table is in qa/generate/verify.py).
OPPOSITES = dict(
    pair.split("/")
    for pair in (
        "增加/减少 增长/下降 上升/下降 提高/降低 扩大/缩小 上线/下线 开通/关闭 多/少 高/低 "
        "最大/最小 支持/反对 赢/输 胜/负 之前/之后 早/晚 成功/失败 最早/最晚 最高/最低 以前/以后"
    ).split()
)
OPPOSITES.update({b: a for a, b in list(OPPOSITES.items())})


def passes(text: str, sources: tuple[Source, ...], tok: Tokenizer, share: float) -> bool:
    if len(split_reply(text)) == 1:
        return check(text, {s.n: s for s in sources}, tok, share).supported
    return all(v.supported for v in verify(text, sources, tok))


def elsewhere(found: list[str], sentence: str, others: str) -> list[str]:
    """What `found` (numbers or names of the other sentences or clauses) holds that
    `sentence` does not."""
    return sorted({x for x in found if x not in sentence and x in others})


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
    moves = random.Random(13)  # for the later variants: the earlier ones draw as they did
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

    variants: dict[str, list[tuple[str, tuple[Source, ...]]]] = {
        k: []
        for k in (
            "faithful", "lead-in", "title", "joined", "number", "name", "words", "other",
            "para-number", "para-name", "sent-number", "sent-name", "antonym",
            "pronoun-faithful", "pronoun-carried",
        )
    }  # fmt: skip
    for i, (title, context, sentence, clause) in enumerate(items):
        src = (Source(1, sentence, context, title),)
        variants["faithful"].append((clause + "[1]。", src))
        variants["lead-in"].append(("根据原文," + clause + "[1]。", src))
        variants["title"].append((f"{title}:{clause}[1]。", src))
        opening = _CLAUSE.findall(sentence)[0].strip("。！？ ")
        if opening != clause and len(opening) >= 4:
            variants["joined"].append((f"{opening}，{clause}[1]。", src))
        other_title, other_context, other_sentence, other_clause = items[(i + 7) % len(items)]
        if other_title != title:
            variants["other"].append((other_clause + "[1]。", src))
        nums = _NUMBER.findall(clause)
        if nums:
            n = nums[0]
            variants["number"].append((clause.replace(n, str(int(n) + 1), 1) + "[1]。", src))
        tagged = [(w, f) for w, f in tok.tagged(clause) if f in NAMES and len(w) > 1]
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
        # Moved within the paragraph, and within the sentence.
        rest_of_paragraph = context.replace(sentence, "\n")
        rest_of_sentence = sentence.replace(clause, "\n")
        paragraph_names = [w for w, f in tok.tagged(context) if f in NAMES and len(w) > 1]
        for kind, others, inside in (
            ("para", rest_of_paragraph, sentence),
            ("sent", rest_of_sentence, clause),
        ):
            if nums and (pool := elsewhere(_NUMBER.findall(others), inside, others)):
                moved = clause.replace(nums[0], moves.choice(pool), 1)
                variants[f"{kind}-number"].append((moved + "[1]。", src))
            if tagged and (pool := elsewhere(paragraph_names, inside, others)):
                moved = clause.replace(tagged[0][0], moves.choice(pool), 1)
                variants[f"{kind}-name"].append((moved + "[1]。", src))
        turned = [w for w in tok.words(clause) if w in OPPOSITES and clause.count(w) == 1]
        if turned and OPPOSITES[turned[0]] not in sentence:
            w = turned[0]
            variants["antonym"].append((clause.replace(w, OPPOSITES[w]) + "[1]。", src))
        # A clause opening with its subject, said of the subject of another article.
        lead = tok.tagged(other_clause)[:1]
        subject = tagged[0][0] if tagged else ""
        if lead and lead[0][1] in NAMES and len(lead[0][0]) > 1 and other_title != title:
            rest = other_clause[len(lead[0][0]) :]
            theirs = Source(2, other_sentence, other_context, other_title)
            if subject and subject not in other_context + other_title:
                carried = f"{clause}[1]。它{rest}[2]。"
                variants["pronoun-carried"].append((carried, (*src, theirs)))
            theirs = Source(1, other_sentence, other_context, other_title)
            variants["pronoun-faithful"].append((f"{other_clause}[1]。它{rest}[1]。", (theirs,)))

    print(f"{len(items)} DRCD answer sentences; share of sentences that pass the rule")
    print(f"{'variant':<16} {'n':>5} " + " ".join(f"{s:>6}" for s in SHARES))
    for name, rows in variants.items():
        passed = [
            sum(passes(text, srcs, tok, share) for text, srcs in rows) / max(len(rows), 1)
            for share in SHARES
        ]
        print(f"{name:<16} {len(rows):>5} " + " ".join(f"{p:>6.3f}" for p in passed))


if __name__ == "__main__":
    main()
