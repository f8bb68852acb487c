"""`qa eval --follow-ups`: follow-up questions built mechanically from a SQuAD-format set.

Pairs of questions about the same article where the second names the article's subject (its
title): the name in the second is replaced by a pronoun (它, or 他 for a person's name) or
dropped, alternately. Measured: the rewritten second question asked alone, asked as a
follow-up to the first, and the original second question asked alone. Topic switches: a
question asked after a question about another article, against the same question alone.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..answer.conversation import Conversation
from ..assistant import Assistant
from ..config import Settings
from ..types import Answer
from .evaluate import Question, indexed, read_squad

SEED = 12


@dataclass(frozen=True)
class FollowUp:
    first: Question
    second: Question  # the original, naming the subject
    rewritten: str  # the same question with the subject replaced by a pronoun or dropped
    form: str  # "pronoun" or "dropped"


@dataclass(frozen=True)
class Switch:
    first: Question
    second: Question  # about another article


@dataclass(frozen=True)
class FollowUpReport:
    """Recall@1 / Hit@1 of follow-ups and topic switches (fractions 0..1)."""

    data: str
    model: str
    pairs: int
    pronoun_pairs: int
    switches: int
    original_recall: float
    original_hit: float
    rewritten_recall: float
    rewritten_hit: float
    follow_up_recall: float
    follow_up_hit: float
    pronoun_follow_up_recall: float
    dropped_follow_up_recall: float
    pronoun_rewritten_recall: float
    dropped_rewritten_recall: float
    switch_alone_recall: float
    switch_alone_hit: float
    switch_history_recall: float
    switch_history_hit: float
    completed: float  # share of follow-ups searched with the subject put back
    switches_completed: float  # share of topic switches wrongly completed
    seconds: float

    def table(self) -> str:
        rows = [
            (
                "follow-up pairs (pronoun / dropped)",
                f"{self.pairs} ({self.pronoun_pairs} / {self.pairs - self.pronoun_pairs})",
            ),
            (
                "original question alone: Recall@1 / Hit@1",
                _pair(self.original_recall, self.original_hit),
            ),
            ("rewritten question alone", _pair(self.rewritten_recall, self.rewritten_hit)),
            (
                "rewritten question after the first",
                _pair(self.follow_up_recall, self.follow_up_hit),
            ),
            (
                "  pronoun / dropped, Recall@1 alone",
                f"{self.pronoun_rewritten_recall:.4f} / {self.dropped_rewritten_recall:.4f}",
            ),
            (
                "  pronoun / dropped, Recall@1 after the first",
                f"{self.pronoun_follow_up_recall:.4f} / {self.dropped_follow_up_recall:.4f}",
            ),
            (
                "follow-up / original Recall@1",
                f"{self.follow_up_recall / max(self.original_recall, 1e-9):.3f}",
            ),
            ("follow-ups completed with the subject", f"{self.completed:.4f}"),
            (
                f"topic switches ({self.switches}) alone",
                _pair(self.switch_alone_recall, self.switch_alone_hit),
            ),
            (
                "topic switches after the first",
                _pair(self.switch_history_recall, self.switch_history_hit),
            ),
            ("topic switches completed (wrongly)", f"{self.switches_completed:.4f}"),
            ("seconds", f"{self.seconds:.0f}"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _pair(recall: float, hit: float) -> str:
    return f"{recall:.4f} / {hit:.4f}"


def make_pairs(
    records: list[dict], questions: list[Question], tokenizer, limit: int | None = None
) -> tuple[list[FollowUp], list[Switch]]:
    """The follow-up pairs and as many topic switches, the same for every run (seeded)."""
    rng = random.Random(SEED)
    title_of = {r["id"]: r["title"] for r in records}
    by_title: dict[str, list[Question]] = {}
    for q in questions:
        by_title.setdefault(title_of[q.article_id], []).append(q)
    pairs: list[FollowUp] = []
    for title, qs in by_title.items():
        if len(title) < 2 or len(qs) < 2:
            continue
        person = any(flag == "nr" for _, flag in tokenizer.tagged(title))
        for q in qs:
            if title not in q.question:
                continue
            first = rng.choice([o for o in qs if o is not q])
            form = "pronoun" if len(pairs) % 2 == 0 else "dropped"
            pairs.append(FollowUp(first, q, rewrite(q.question, title, form, person), form))
    rng.shuffle(pairs)
    if limit:
        pairs = pairs[:limit]
    switches = []
    for p in pairs:
        other = rng.choice(questions)
        while title_of[other.article_id] == title_of[p.second.article_id]:
            other = rng.choice(questions)
        switches.append(Switch(p.first, other))
    return pairs, switches


def rewrite(question: str, title: str, form: str, person: bool = False) -> str:
    """`question` without its subject `title`: a pronoun in its place, or nothing."""
    if form == "pronoun":
        return question.replace(title, "他" if person else "它", 1)
    if title + "的" in question:
        return question.replace(title + "的", "", 1)
    return question.replace(title, "", 1)


def follow_ups(
    data: str | Path,
    settings: Settings | None = None,
    index: str | Path | None = None,
    limit: int | None = None,
    embedder=None,
) -> FollowUpReport:
    """Index the contexts of `data`, then ask the follow-up pairs and topic switches."""
    settings = settings or Settings()
    records, questions = read_squad(data)
    with indexed(records, settings, index, embedder) as (bot, _):
        pairs, switches = make_pairs(records, questions, bot.tokenizer, limit)
        return score(bot, pairs, switches, str(data))


def _recall_hit(answer: Answer, q: Question) -> tuple[bool, bool]:
    first = next(iter(answer.passages), None)
    recall = first is not None and first.article_id == q.article_id
    cited = answer.citations[0].sentence if answer.citations else ""
    return recall, bool(cited) and any(a in cited for a in q.answers)


def score(
    bot: Assistant, pairs: list[FollowUp], switches: list[Switch], data: str = ""
) -> FollowUpReport:
    began = time.perf_counter()
    rows = {k: [] for k in ("original", "rewritten", "follow_up", "alone", "history")}
    completed = switched = 0
    for p in pairs:
        rows["original"].append(_recall_hit(bot.extractive(p.second.question), p.second))
        rows["rewritten"].append(_recall_hit(bot.extractive(p.rewritten), p.second))
        chat = Conversation(bot)
        chat.ask(p.first.question)
        answer = chat.ask(p.rewritten)
        completed += answer.searched != answer.question
        rows["follow_up"].append(_recall_hit(answer, p.second))
    for s in switches:
        rows["alone"].append(_recall_hit(bot.extractive(s.second.question), s.second))
        chat = Conversation(bot)
        chat.ask(s.first.question)
        answer = chat.ask(s.second.question)
        switched += answer.searched != answer.question
        rows["history"].append(_recall_hit(answer, s.second))

    def mean(name: str, i: int, form: str | None = None) -> float:
        values = [r[i] for r, p in zip(rows[name], pairs, strict=False) if form in (None, p.form)]
        return sum(values) / max(len(values), 1)

    return FollowUpReport(
        data=data,
        model=bot.info().model,
        pairs=len(pairs),
        pronoun_pairs=sum(p.form == "pronoun" for p in pairs),
        switches=len(switches),
        original_recall=mean("original", 0),
        original_hit=mean("original", 1),
        rewritten_recall=mean("rewritten", 0),
        rewritten_hit=mean("rewritten", 1),
        follow_up_recall=mean("follow_up", 0),
        follow_up_hit=mean("follow_up", 1),
        pronoun_follow_up_recall=mean("follow_up", 0, "pronoun"),
        dropped_follow_up_recall=mean("follow_up", 0, "dropped"),
        pronoun_rewritten_recall=mean("rewritten", 0, "pronoun"),
        dropped_rewritten_recall=mean("rewritten", 0, "dropped"),
        switch_alone_recall=mean("alone", 0),
        switch_alone_hit=mean("alone", 1),
        switch_history_recall=mean("history", 0),
        switch_history_hit=mean("history", 1),
        completed=completed / max(len(pairs), 1),
        switches_completed=switched / max(len(switches), 1),
        seconds=time.perf_counter() - began,
    )


def write_follow_up_report(report: FollowUpReport, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(asdict(report), ensure_ascii=False, indent=2) + "\n")
