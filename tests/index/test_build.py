"""`qa.build`: what it reports, what it re-embeds, and that a failed build harms nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import (
    ANSWERABLE,
    HASH,
    PARAGRAPHS,
    CountingEmbedder,
    OtherModel,
    answer_key,
    write_corpus,
)

import qa
from qa.index.bm25 import BM25
from qa.stores import folder as store

QUESTION = "地铁1号线共设多少座车站?"


def answers(index: Path) -> list[tuple]:
    bot = qa.load(index, HASH)
    return [answer_key(bot.ask(q)) for q in ANSWERABLE]


def leftovers(index: Path) -> list[str]:
    """Folders and files a finished build should not leave behind."""
    live = json.loads((index / "manifest.json").read_text(encoding="utf-8"))["data"]
    return sorted(
        p.name
        for p in index.iterdir()
        if p.name.startswith((".tmp-", "manifest.json.tmp"))
        or (p.name.startswith("data-") and p.name != live)
    )


def test_first_build_reports_every_article_as_added(corpus, tmp_path):
    began = time.perf_counter()
    stats = qa.build(corpus, tmp_path / "index", HASH)
    took = time.perf_counter() - began

    assert isinstance(stats, qa.BuildStats)
    assert (stats.added, stats.changed, stats.removed, stats.unchanged) == (4, 0, 0, 0)
    assert (stats.articles, stats.paragraphs) == (4, PARAGRAPHS)
    assert stats.embedded == PARAGRAPHS  # every paragraph is one short chunk
    assert stats.skipped == ()
    # The time it reports is the time the build took, in seconds: not missing, not ms.
    assert isinstance(stats.seconds, float) and 0 < stats.seconds <= took


def test_index_folder_has_a_manifest_with_format_model_dim_and_counts(corpus, tmp_path):
    index = tmp_path / "index"
    stats = qa.build(corpus, index, HASH)

    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == store.FOLDER_FORMAT
    assert manifest["model"] == "hash"
    assert manifest["dim"] == 256
    counts = manifest["counts"]
    assert counts["articles"] == stats.articles == 4
    assert counts["paragraphs"] == stats.paragraphs
    assert counts["passages"] == PARAGRAPHS
    assert counts["sentences"] >= counts["passages"]
    assert counts["terms"] > 0
    assert (index / manifest["data"] / "articles.jsonl").is_file()
    assert (index / manifest["data"] / "vectors.npy").is_file()
    assert leftovers(index) == []


def test_rebuild_without_changes_embeds_nothing_and_answers_the_same(built_index, corpus):
    before = answers(built_index)
    embedder = CountingEmbedder()

    stats = qa.build(corpus, built_index, HASH, embedder=embedder)

    assert stats.embedded == 0
    assert embedder.texts == []
    assert (stats.added, stats.changed, stats.removed, stats.unchanged) == (0, 0, 0, 4)
    assert answers(built_index) == before
    assert leftovers(built_index) == []


def test_changing_one_paragraph_re_embeds_only_that_paragraph(built_index, corpus):
    path = corpus / "metro.md"
    old = "1号线全长28.8公里，共设24座车站，西起双港站，东至瑶湖西站。"
    new = "1号线全长28.8公里，共设30座车站，西起双港站，东至瑶湖西站。"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    embedder = CountingEmbedder()

    stats = qa.build(corpus, built_index, HASH, embedder=embedder)

    assert (stats.added, stats.changed, stats.removed, stats.unchanged) == (0, 1, 0, 3)
    assert stats.embedded == 1
    assert embedder.texts == [new]
    answer = qa.load(built_index, HASH).ask(QUESTION)
    assert answer.found
    assert "30座车站" in answer.citations[0].sentence
    assert all("24座车站" not in c.sentence for c in answer.citations)


def test_new_article_is_embedded_alone_and_becomes_searchable(built_index, corpus):
    paragraph = "滕王阁位于南昌市赣江东岸，始建于唐永徽四年，因王勃的《滕王阁序》而闻名。"
    (corpus / "tengwang.txt").write_text(f"滕王阁简介\n\n{paragraph}\n", encoding="utf-8")
    embedder = CountingEmbedder()

    stats = qa.build(corpus, built_index, HASH, embedder=embedder)

    assert (stats.added, stats.changed, stats.removed, stats.unchanged) == (1, 0, 0, 4)
    assert embedder.texts == [paragraph]
    top = qa.load(built_index, HASH).search("滕王阁始建于哪一年?", k=1)[0]
    assert top.article_id == "tengwang.txt"


def test_renaming_a_file_reuses_its_vectors(built_index, corpus):
    (corpus / "metro.md").rename(corpus / "nanchang-metro.md")

    stats = qa.build(corpus, built_index, HASH)

    assert (stats.added, stats.removed) == (1, 1)
    assert stats.embedded == 0
    ids = {p.article_id for p in qa.load(built_index, HASH).search(QUESTION, k=50)}
    assert "nanchang-metro.md" in ids and "metro.md" not in ids


def test_deleted_article_never_comes_back_from_search(built_index, corpus):
    (corpus / "marathon.txt").unlink()

    stats = qa.build(corpus, built_index, HASH)

    assert (stats.removed, stats.unchanged, stats.articles, stats.embedded) == (1, 3, 3, 0)
    bot = qa.load(built_index, HASH)
    for question in ("马拉松男子全程冠军是谁?", "八一广场鸣枪开跑", "基普罗蒂奇"):
        assert all(p.article_id != "marathon.txt" for p in bot.search(question, k=50))
    answer = bot.ask("马拉松男子全程冠军是谁?")
    assert not answer.found
    assert all(p.article_id != "marathon.txt" for p in answer.passages)


def test_changing_the_model_re_embeds_everything(built_index, corpus):
    stats = qa.build(corpus, built_index, HASH, embedder=OtherModel())

    assert stats.embedded == PARAGRAPHS
    manifest = json.loads((built_index / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["model"], manifest["dim"]) == ("hash-64", 64)
    answer = qa.load(built_index, embedder=OtherModel()).ask("赣服通集成了多少项服务?")
    assert "6697项" in answer.citations[0].sentence

    # and back again: nothing of the other model's vectors is reused
    assert qa.build(corpus, built_index, HASH).embedded == PARAGRAPHS


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"empty.txt": ""},
        {"blank.md": " \n\n \n"},
        {"slides.pdf": "赣服通集成了6697项服务。"},
    ],
    ids=["no-files", "empty-file", "blank-file", "unsupported-type"],
)
def test_empty_corpus_raises(tmp_path, files):
    corpus = write_corpus(tmp_path / "corpus", files)

    with pytest.raises(qa.EmptyCorpusError, match="qa build"):
        qa.build(corpus, tmp_path / "index", HASH)
    assert not (tmp_path / "index" / "manifest.json").exists()


def test_missing_corpus_folder_raises_empty_corpus(tmp_path):
    with pytest.raises(qa.EmptyCorpusError, match="does not exist"):
        qa.build(tmp_path / "nowhere", tmp_path / "index", HASH)


def test_emptied_corpus_keeps_the_previous_index(built_index, corpus):
    before = answers(built_index)
    for path in corpus.iterdir():
        path.unlink()

    with pytest.raises(qa.EmptyCorpusError):
        qa.build(corpus, built_index, HASH)
    assert answers(built_index) == before


class CrashingEmbedder(CountingEmbedder):
    """Dies on its second batch, like a build interrupted halfway through embedding."""

    def encode(self, texts, *, progress=False):
        if self.texts:
            raise RuntimeError("killed while embedding")
        return super().encode(texts, progress=progress)


def test_build_that_dies_while_embedding_leaves_the_previous_index(built_index, corpus):
    before = answers(built_index)
    paragraphs = [f"第{n}届南昌国际马拉松新增了{n}个补给站。" for n in range(1, 7)]
    (corpus / "extra.txt").write_text("马拉松补给站\n\n" + "\n\n".join(paragraphs), "utf-8")
    embedder = CrashingEmbedder()
    settings = qa.Settings(model="hash", progress=False, batch_size=1)  # batches of 4 texts

    with pytest.raises(RuntimeError, match="killed"):
        qa.build(corpus, built_index, settings, embedder=embedder, progress=lambda *_: None)

    assert len(embedder.texts) == 4  # it died halfway through the six new paragraphs
    assert answers(built_index) == before
    assert leftovers(built_index) == []
    stats = qa.build(corpus, built_index, HASH)
    assert (stats.added, stats.unchanged, stats.embedded) == (1, 4, 6)


def test_build_that_fails_committing_leaves_the_previous_index(built_index, corpus, monkeypatch):
    before = answers(built_index)
    (corpus / "marathon.txt").unlink()
    real = store.disk._fsync_write

    def disk_full_at_commit(path: Path, payload: bytes) -> None:
        if path.name == "manifest.json.tmp":  # the data folder is complete by now
            raise OSError(28, "No space left on device")
        real(path, payload)

    monkeypatch.setattr(store.disk, "_fsync_write", disk_full_at_commit)
    with pytest.raises(OSError, match="No space"):
        qa.build(corpus, built_index, HASH)
    monkeypatch.undo()

    assert answers(built_index) == before
    assert leftovers(built_index) == []
    assert qa.build(corpus, built_index, HASH).removed == 1


# A build process killed outright (no cleanup runs) at two points of writing the index.
KILL_SCRIPT = """
import os, sys
import qa
from qa.stores.folder import disk

point = sys.argv[3]
real_fsync_dir, real_fsync_write = disk._fsync_dir, disk._fsync_write

def fsync_dir(path):
    if point == "before-rename" and path.name.startswith(".tmp-"):
        os._exit(9)
    real_fsync_dir(path)

def fsync_write(path, payload):
    if point == "before-commit" and path.name == "manifest.json.tmp":
        os._exit(9)
    real_fsync_write(path, payload)

disk._fsync_dir, disk._fsync_write = fsync_dir, fsync_write
qa.build(sys.argv[1], sys.argv[2], qa.Settings(model="hash", progress=False))
"""


@pytest.mark.parametrize("point", ["before-rename", "before-commit"])
@pytest.mark.slow
def test_killed_build_leaves_previous_index_and_next_build_cleans_up(built_index, corpus, point):
    before = answers(built_index)
    (corpus / "porcelain.txt").unlink()

    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), str(corpus), str(built_index), point],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert killed.returncode == 9, killed.stderr
    assert leftovers(built_index) != []  # the half-written generation is still there
    assert answers(built_index) == before
    stats = qa.build(corpus, built_index, HASH)
    assert (stats.removed, stats.articles) == (1, 3)
    assert leftovers(built_index) == []


def test_second_build_while_one_holds_the_lock_is_refused(built_index, corpus):
    before = answers(built_index)
    (corpus / "marathon.txt").unlink()

    with store.build_lock(built_index):
        with pytest.raises(qa.BuildLockedError, match="already writing"):
            qa.build(corpus, built_index, HASH)
        assert answers(built_index) == before

    assert qa.build(corpus, built_index, HASH).removed == 1  # the lock is free again


def test_rebuild_after_changes_stores_exactly_what_a_fresh_build_stores(
    built_index, corpus, tmp_path
):
    # Unchanged articles keep their passages, tokens and character counts from the previous
    # index; the result must not depend on that shortcut.
    path = corpus / "metro.md"
    path.write_text(path.read_text(encoding="utf-8").replace("24座", "30座"), encoding="utf-8")
    (corpus / "marathon.txt").unlink()
    (corpus / "tengwang.txt").write_text(
        "滕王阁简介\n\n滕王阁位于南昌市赣江东岸，始建于唐永徽四年。\n", encoding="utf-8"
    )
    qa.build(corpus, built_index, HASH)
    qa.build(corpus, tmp_path / "fresh", HASH)

    rebuilt = store.read_index(built_index, for_build=True)
    fresh = store.read_index(tmp_path / "fresh", for_build=True)
    assert rebuilt.passages.char_df == fresh.passages.char_df
    assert [a.article for a in rebuilt.passages.articles] == [
        a.article for a in fresh.passages.articles
    ]
    assert rebuilt.arrays().keys() == fresh.arrays().keys()
    for name, array in rebuilt.arrays().items():  # places, sentences, content keys, vectors
        assert array.tolist() == fresh.arrays()[name].tolist(), name
    # Keyword counts and BM25 weights: the rebuild extends the stored postings, the fresh
    # build counts everything; the same rows hold the same terms with the same floats.
    assert postings_by_term(rebuilt) == postings_by_term(fresh)
    assert rebuilt.postings.lengths.tolist() == fresh.postings.lengths.tolist()
    assert answers(built_index) == answers(tmp_path / "fresh")


def postings_by_term(data) -> dict[str, tuple[list, list, bytes]]:
    bm25, postings = BM25(data.postings), data.postings
    out = {}
    for term, t in bm25.vocab.items():
        lo, hi = postings.indptr[t], postings.indptr[t + 1]
        docs, weights = bm25.weights_of(t)
        out[term] = (docs.tolist(), postings.tf[lo:hi].tolist(), weights.tobytes())
    return out


def test_a_build_keeps_each_distinct_keyword_token_once():
    """A thousand tokens per passage, each a new string, were tens of gigabytes at a million
    passages (issue 23): equal tokens of different passages are one object."""
    from qa.build import _terms
    from qa.index.split import split_passages

    passages = [
        *split_passages("a", 0, "北京市今年新建了十二条公交线路。", 480),
        *split_passages("b", 0, "上海市今年也新建了公交线路。", 480),
    ]
    first, second = _terms(passages, {"a": "北京", "b": "上海"})

    shared = set(first) & set(second)
    assert len(shared) >= 10  # 今, 年, 公交, 新建 ... as words and grams
    for token in shared:
        assert next(t for t in first if t == token) is next(t for t in second if t == token)
