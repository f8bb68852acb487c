"""One contract, two stores: a folder (FAISS) and Milvus (Milvus Lite in tmp_path).

Whatever the store, a user builds, asks, rebuilds after an edit or a deletion, and opens
the index again from another process, and sees the same thing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ANSWERABLE, ARTICLES, HASH, OFF_TOPIC, PARAGRAPHS, CountingEmbedder

import qa

# Tests of the Milvus half carry the `milvus` marker: `-m "not milvus"` runs the folder half.
STORES = ["folder", pytest.param("milvus", marks=pytest.mark.milvus)]


def _milvus_missing() -> str | None:
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as exc:
        return f"pymilvus and milvus-lite are not installed ({exc}): pip install -e '.[milvus]'"
    return None


@pytest.fixture(params=STORES)
def index(request, tmp_path: Path):
    """Where a test's index lives: a folder, or a Milvus Lite file (a URI)."""
    if request.param == "folder":
        yield tmp_path / "index"
        return
    if reason := _milvus_missing():
        pytest.skip(reason)
    from qa.stores.milvus import release

    uri = f"milvus://{tmp_path}/index.db"
    yield uri
    release(uri)


def _ask_all(bot: qa.Assistant) -> dict[str, qa.Answer]:
    return {q: bot.ask(q) for q in [*ANSWERABLE, *OFF_TOPIC]}


@pytest.mark.milvus
def test_milvus_keeps_the_names_existing_indexes_are_stored_under(corpus, tmp_path):
    """Collections, counts and settings keep the names the first Milvus indexes were written
    with (rows are versioned by a hash of those settings): those indexes load, and a build
    keeps their rows."""
    if reason := _milvus_missing():
        pytest.skip(reason)
    from qa.build import TOKENS
    from qa.stores.milvus import MilvusStore, release

    uri = f"milvus://{tmp_path}/names.db"
    qa.build(corpus, uri, HASH)
    store = MilvusStore(uri)
    try:
        assert store.client.has_collection("qa_chunks")
        (row,) = store.scan("meta", 'pk != ""', ["manifest"])
    finally:
        release(uri)
    manifest = json.loads(row["manifest"])
    assert manifest["counts"]["chunks"] == PARAGRAPHS
    assert manifest["settings"] == {"chunk_chars": HASH.passage_chars, "tokens": TOKENS}


def test_build_then_answer_with_citations(corpus, index):
    stats = qa.build(corpus, index, HASH)
    assert (stats.added, stats.articles, stats.paragraphs) == (4, 4, PARAGRAPHS)
    assert stats.embedded == PARAGRAPHS
    bot = qa.load(index, HASH)
    for question, (article, fragment) in ANSWERABLE.items():
        answer = bot.ask(question)
        assert answer.found, question
        assert answer.citations[0].article_id == article
        assert fragment in answer.citations[0].sentence
        c = answer.citations[0]
        assert bot.paragraph(c.article_id, c.paragraph)[c.start : c.end] == c.sentence
    for question in OFF_TOPIC:
        assert not bot.ask(question).found, question
    assert bot.search("南昌地铁1号线", k=3)[0].article_id == "metro.md"


@pytest.mark.milvus
def test_both_stores_give_the_same_answers(corpus, tmp_path):
    if reason := _milvus_missing():
        pytest.skip(reason)
    from qa.stores.milvus import release

    uri = f"milvus://{tmp_path}/same.db"
    qa.build(corpus, tmp_path / "index", HASH)
    qa.build(corpus, uri, HASH)
    try:
        folder, milvus = _ask_all(qa.load(tmp_path / "index", HASH)), _ask_all(qa.load(uri, HASH))
    finally:
        release(uri)
    for question in folder:
        a, b = folder[question], milvus[question]
        assert (a.found, a.text, a.citations) == (b.found, b.text, b.citations), question


def test_rebuild_embeds_only_the_changed_article(corpus, index):
    qa.build(corpus, index, HASH)
    (corpus / "metro.md").write_text(
        ARTICLES["metro.md"].replace("共设24座车站", "共设27座车站"), encoding="utf-8"
    )
    counting = CountingEmbedder()
    stats = qa.build(corpus, index, HASH, embedder=counting)
    assert (stats.added, stats.changed, stats.removed, stats.unchanged) == (0, 1, 0, 3)
    assert counting.texts == ["1号线全长28.8公里，共设27座车站，西起双港站，东至瑶湖西站。"]
    assert stats.embedded == 1
    answer = qa.load(index, HASH).ask("地铁1号线共设多少座车站?")
    assert "27座车站" in answer.citations[0].sentence

    again = CountingEmbedder()
    stats = qa.build(corpus, index, HASH, embedder=again)
    assert again.texts == [] and stats.unchanged == 4


def test_deleted_article_is_gone(corpus, index):
    qa.build(corpus, index, HASH)
    (corpus / "marathon.txt").unlink()
    stats = qa.build(corpus, index, HASH, embedder=CountingEmbedder())
    assert (stats.removed, stats.articles, stats.embedded) == (1, 3, 0)
    bot = qa.load(index, HASH)
    answer = bot.ask("马拉松男子全程冠军是谁?")
    assert all(c.article_id != "marathon.txt" for c in answer.citations)
    assert all(p.article_id != "marathon.txt" for p in bot.search("马拉松 冠军 基普罗蒂奇", k=10))
    assert bot.ask("赣服通集成了多少项服务?").found


@pytest.mark.slow
def test_reopened_by_another_process(corpus, index):
    qa.build(corpus, index, HASH)
    if isinstance(index, str):
        from qa.stores.milvus import release

        release(index)  # Milvus Lite serves one process at a time: let the other one in
    env = {**os.environ, "QA_MODEL": "hash"}
    question = "赣服通集成了多少项服务?"
    run = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ask", question, "--index", str(index), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["found"] and "6697项" in answer["citations"][0]["sentence"]


def test_missing_and_mismatched_index_say_what_to_run(corpus, index):
    with pytest.raises(qa.IndexNotFoundError, match="qa build"):
        qa.load(index, HASH)
    qa.build(corpus, index, HASH)
    with pytest.raises(qa.IndexMismatchError, match="qa build"):
        qa.load(index, qa.Settings(model="another-model"))


def test_app_rebuilds_and_answers_on_either_store(corpus, index):
    # The browser app's service: an upload's rebuild goes live on a folder or in Milvus.
    from ui.service import Service

    service = Service(corpus, str(index) if isinstance(index, str) else index, HASH)
    assert service.rebuild()[0].startswith("索引已更新")
    question, (article, fragment) = next(iter(ANSWERABLE.items()))
    answer = service.ask(question).answer
    assert answer.citations[0].article_id == article and fragment in answer.citations[0].sentence
    (corpus / "new.txt").write_text(
        "抚州新闻\n\n抚州汤显祖大剧院于2017年建成开放。\n", encoding="utf-8"
    )
    assert "新增 1" in service.rebuild()[0]
    answer = service.ask("汤显祖大剧院哪一年建成开放?").answer
    assert answer.found and "2017年" in answer.citations[0].sentence
