"""Hostile rebuilds: after each change to the corpus or the index, a rebuild must hold and
answer exactly what a build from nothing of the same corpus does."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from conftest import ANSWERABLE, HASH, write_corpus
from test_unchanged_files import live, same_as_fresh

import qa


def hits(index: Path, settings=HASH) -> list:
    bot = qa.load(index, settings)
    return [
        [(p.article_id, p.text, round(p.score, 5)) for p in bot.search(q, 5)] for q in ANSWERABLE
    ]


def fresh_hits(corpus: Path, tmp_path: Path, settings=HASH) -> list:
    fresh = tmp_path / "fresh_hits"
    shutil.rmtree(fresh, ignore_errors=True)
    qa.build(corpus, fresh, settings)
    return hits(fresh, settings)


def jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")


def test_swapped_names(corpus, tmp_path):
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    os.rename(corpus / "marathon.txt", corpus / "tmp.txt")
    os.rename(corpus / "porcelain.txt", corpus / "marathon.txt")
    os.rename(corpus / "tmp.txt", corpus / "porcelain.txt")
    qa.build(corpus, index, HASH)
    same_as_fresh(index, corpus, tmp_path)
    assert hits(index) == fresh_hits(corpus, tmp_path)


def test_retargeted_symlink(corpus, tmp_path):
    outside = write_corpus(
        tmp_path / "outside",
        {"x.txt": "甲\n\n赣服通集成了一万项服务。\n", "y.txt": "乙\n\n地铁共设九十座车站。\n"},
    )
    index = tmp_path / "index"
    (corpus / "link.txt").symlink_to(outside / "x.txt")
    qa.build(corpus, index, HASH)
    (corpus / "link.txt").unlink()
    (corpus / "link.txt").symlink_to(outside / "y.txt")
    qa.build(corpus, index, HASH)
    same_as_fresh(index, corpus, tmp_path)
    assert hits(index) == fresh_hits(corpus, tmp_path)


def test_record_ids_colliding_across_new_and_unchanged_files(corpus, tmp_path):
    index = tmp_path / "index"
    jsonl(
        corpus / "a.jsonl",
        [
            {"id": "r1", "title": "甲", "text": "赣服通有一万项服务。"},
            {"id": "r1", "title": "甲2", "text": "重复的记录。"},
            {"id": "r2", "title": "乙", "text": "地铁共设九十座车站。"},
        ],
    )
    qa.build(corpus, index, HASH)
    jsonl(
        corpus / "b.jsonl",
        [
            {"id": "r2", "title": "丙", "text": "马拉松冠军是张三。"},
            {"id": "a.jsonl", "title": "丁", "text": "陶瓷名瓷五种。"},
        ],
    )
    qa.build(corpus, index, HASH)
    same_as_fresh(index, corpus, tmp_path)
    (corpus / "b.jsonl").unlink()
    qa.build(corpus, index, HASH)
    same_as_fresh(index, corpus, tmp_path)


def test_file_turns_into_a_folder(corpus, tmp_path):
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    (corpus / "metro.md").unlink()
    (corpus / "metro.md").mkdir()
    (corpus / "metro.md" / "in.txt").write_text("里面\n\n地铁共设九十座车站。\n", "utf-8")
    qa.build(corpus, index, HASH)  # (chmod 000 means nothing to root, who runs these)
    same_as_fresh(index, corpus, tmp_path)


def test_odd_names(corpus, tmp_path):
    index = tmp_path / "index"
    for name in ("a b.txt", "中文 名.txt", "-rf.txt", "new\nline.txt"):
        (corpus / name).write_text(f"{name}\n\n文章{name}的正文。\n", "utf-8")
    qa.build(corpus, index, HASH)
    (corpus / "-rf.txt").write_text("改了\n\n新的正文内容。\n", "utf-8")
    qa.build(corpus, index, HASH)
    same_as_fresh(index, corpus, tmp_path)


def test_two_corpora_alternately_and_a_copy(corpus, tmp_path):
    index = tmp_path / "index"
    other = write_corpus(tmp_path / "other", {"metro.md": "别的\n\n地铁共设九十座车站。\n"})
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy, copy_function=shutil.copy2)
    for root in (corpus, other, corpus, copy, other, copy):
        qa.build(root, index, HASH)
        same_as_fresh(index, root, tmp_path)


def test_passage_chars_changed_between_builds(corpus, tmp_path):
    index = tmp_path / "index"
    small = dataclasses.replace(HASH, passage_chars=20)
    qa.build(corpus, index, HASH)
    qa.build(corpus, index, small)
    assert hits(index, small) == fresh_hits(corpus, tmp_path, small)
    (corpus / "new.txt").write_text("新\n\n" + "滕王阁位于南昌市赣江东岸。" * 5 + "\n", "utf-8")
    qa.build(corpus, index, HASH)
    assert hits(index) == fresh_hits(corpus, tmp_path)


def test_truncated_read_json(corpus, tmp_path):
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    read = live(index) / "read.json"
    read.write_bytes(read.read_bytes()[: len(read.read_bytes()) // 2])
    (corpus / "new.txt").write_text("新\n\n滕王阁位于南昌市赣江东岸。\n", "utf-8")
    qa.build(corpus, index, HASH)
    same_as_fresh(index, corpus, tmp_path)


def test_threads_ask_while_a_large_index_is_rebuilt_and_reloaded(corpus, tmp_path, monkeypatch):
    import threading

    import qa.stores.folder as folder

    monkeypatch.setattr(folder.search, "EXACT_UP_TO", 0)
    monkeypatch.setattr(folder.search, "LISTS_FROM", 0)
    monkeypatch.setattr(folder.search, "lists_for", lambda n: 4)
    monkeypatch.setattr(folder.search, "RELEASE_ABOVE", 0)
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    bot = qa.load(index, HASH)
    assert bot.index._mapped
    expected = hits(index)
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask(b):
        try:
            while not stop.is_set():
                got = [
                    [(p.article_id, p.text, round(p.score, 5)) for p in b.search(q, 5)]
                    for q in ANSWERABLE
                ]
                assert got == expected
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(bot,)) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(3):
        (corpus / f"n{i}.txt").write_text(f"新{i}\n\n北京烤鸭第{i}种做法。\n", "utf-8")
        qa.build(corpus, index, HASH)
        again = qa.load(index, HASH)
        assert hits(index) == fresh_hits(corpus, tmp_path)
        del again
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:1]


def test_a_reader_library_upgrade_reads_unchanged_documents_again(corpus, tmp_path, monkeypatch):
    """Found by a hostile review: what a .pdf or .docx gives depends on pdfminer.six
    and python-docx (the document cache keys on their versions: qa/read/cache.py
    `_versions`), but what a build remembered of unchanged files was keyed only by the
    reading code: after `pip install -U pdfminer.six` a rebuild kept the old text of every
    unchanged PDF while a fresh build read it with the new library."""
    from make_documents import report_docx

    import qa.read.cache as cache
    import qa.read.corpus as reading

    report_docx(corpus / "report.docx")
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    seen: list[str] = []
    real = reading.read_path
    monkeypatch.setattr(
        reading, "read_path", lambda path, root, *a: seen.append(path.name) or real(path, root, *a)
    )
    monkeypatch.setattr(cache, "_versions", lambda: "reader 1 pdfminer.six 99 python-docx 99")

    qa.build(corpus, index, HASH)

    assert "report.docx" in seen


def test_the_previous_release_says_an_index_is_newer_not_damaged(corpus, tmp_path):
    """Found by a hostile review: the layout changed (bm25_tf / bm25_lengths instead
    of terms_* / bm25_weights) but the manifest's "format" was still 1, so the previous
    release (2ebb8e2; a `qa serve` not yet upgraded, or a rollback) called a new index
    "damaged" and its `qa build` threw it away and embedded everything again, instead of
    saying the index has a format it does not read."""
    import subprocess
    import sys

    from conftest import ROOT

    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "2ebb8e2", "qa"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        import pytest

        pytest.skip("the previous release is not in this checkout")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    env = {**os.environ, "PYTHONPATH": str(old)}
    ran = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ask", "--index", str(index), "--model", "hash", "地铁"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=old,
    )
    assert "damaged" not in ran.stderr, ran.stderr


def test_a_large_index_rebuilt_with_no_passage_kept_is_trained_like_a_fresh_one(
    corpus, tmp_path, monkeypatch
):
    """Found by a hostile review (quality): a large index's rebuild reused the last
    build's IVF centroids and 8-bit ranges whenever the number of lists was the same
    (qa/stores/folder/search.py `_lists_index`), even when not one passage was kept
    (another corpus folder built into the same index, or another passage size): the new
    vectors were coded with ranges learnt from vectors no longer there."""
    import faiss

    import qa.stores.folder as folder

    monkeypatch.setattr(folder.search, "EXACT_UP_TO", 0)
    monkeypatch.setattr(folder.search, "LISTS_FROM", 0)
    monkeypatch.setattr(folder.search, "lists_for", lambda n: 4)
    other = write_corpus(
        tmp_path / "other",
        {
            f"n{i}.md": f"# 标题{i}\n\n" + "北京烤鸭的做法第{i}步。" * (i % 5 + 1) + "\n"
            for i in range(40)
        },
    )
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    qa.build(other, index, HASH)
    fresh = tmp_path / "fresh"
    qa.build(other, fresh, HASH)

    def trained(path):
        ann = qa.load(path, HASH).index.data.ann  # held: `.sq` does not keep it alive
        return faiss.vector_to_array(ann.sq.trained)

    assert (trained(index) == trained(fresh)).all()
