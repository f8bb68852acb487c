"""The build pipeline knows no store: any object with the Store methods can hold an index.

A store that keeps everything in memory (what a third store, say pgvector, would implement
in one file of qa/stores/) sees exactly what a folder or Milvus sees: the diff, the reuse of
stored vectors by content key, and a Plan with only the passages of what changed.
"""

from __future__ import annotations

import contextlib

from conftest import ARTICLES, HASH, PARAGRAPHS

import qa
from qa.types import Manifest, Plan


class MemoryStore:
    label = "memory"

    def __init__(self):
        self.plans: list[Plan] = []
        self.stored: dict[bytes, object] = {}  # content key -> vector
        self.asked: list[bytes] = []

    def lock(self):
        return contextlib.nullcontext()

    def manifest(self) -> Manifest | None:
        if not self.plans:
            return None
        p = self.plans[-1]
        hashes = {a.article.id: a.hash for a in p.articles}
        return Manifest(p.model, p.backend, p.dim, p.settings, hashes)

    def vectors(self, keys):
        self.asked += keys
        return {k: self.stored[k] for k in keys if k in self.stored}

    def write(self, plan: Plan) -> None:
        self.plans.append(plan)
        self.stored.update(zip(plan.keys, plan.vectors, strict=True))

    def open(self):
        raise NotImplementedError

    def generation(self) -> str:
        return str(len(self.plans))


def test_a_store_of_its_own_gets_a_plan_of_only_what_changed(corpus):
    store = MemoryStore()
    first = qa.build(corpus, store, HASH)
    plan = store.plans[-1]
    assert (first.added, first.embedded) == (len(ARTICLES), PARAGRAPHS)
    assert not plan.kept and len(plan.passages) == len(plan.keys) == len(plan.terms)
    assert plan.vectors.shape == (len(plan.passages), plan.dim)
    assert all(terms for terms in plan.terms)  # every passage has keyword tokens

    edited = corpus / "metro.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n\n新的一段。\n", encoding="utf-8")
    (corpus / "marathon.txt").unlink()
    second = qa.build(corpus, store, HASH)
    plan = store.plans[-1]

    assert (second.changed, second.removed, second.unchanged) == (1, 1, 2)
    assert plan.kept == {"ganfutong.txt", "porcelain.txt"}
    assert {p.article_id for p in plan.passages} == {"metro.md"}
    assert second.embedded == 1  # the new paragraph; the others' vectors came from the store
    assert store.asked  # ... asked for by content key
