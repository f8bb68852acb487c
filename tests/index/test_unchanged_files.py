"""A rebuild does not read a corpus file again while it is unchanged (size, times, inode as
the last build saw them): what it stores is still exactly what reading everything stores."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import ANSWERABLE, HASH, answer_key, write_corpus

import qa
import qa.read.corpus as reading
from qa.read.file import relative


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The corpus files read from now on, by path."""
    seen: list[str] = []
    real = reading.read_path

    def spy(path, root, progress=None, seconds=None):
        seen.append(relative(path, root))
        return real(path, root, progress, seconds)

    monkeypatch.setattr(reading, "read_path", spy)
    return seen


def live(index: Path) -> Path:
    return index / json.loads((index / "manifest.json").read_text(encoding="utf-8"))["data"]


def same_as_fresh(index: Path, corpus: Path, tmp_path: Path) -> None:
    """The index holds byte for byte the articles a build from nothing writes, and answers
    as it does."""
    fresh = tmp_path / "fresh"
    shutil.rmtree(fresh, ignore_errors=True)
    qa.build(corpus, fresh, HASH)
    for name in ("articles.jsonl", "article_ids.json", "article_hashes.json"):
        assert (live(index) / name).read_bytes() == (live(fresh) / name).read_bytes(), name
    bot, other = qa.load(index, HASH), qa.load(fresh, HASH)
    for q in ANSWERABLE:
        assert answer_key(bot.ask(q)) == answer_key(other.ask(q))


def test_a_rebuild_reads_only_the_new_file(corpus, tmp_path, reads):
    index = tmp_path / "index"
    first = qa.build(corpus, index, HASH)
    assert len(reads) == first.articles
    reads.clear()
    (corpus / "tengwang.txt").write_text(
        "滕王阁简介\n\n滕王阁位于南昌市赣江东岸，始建于唐永徽四年。\n", encoding="utf-8"
    )

    stats = qa.build(corpus, index, HASH)

    assert reads == ["tengwang.txt"]
    assert (stats.added, stats.unchanged, stats.articles) == (1, first.articles, first.articles + 1)
    assert stats.paragraphs == first.paragraphs + 1  # unchanged files' paragraphs counted too
    assert stats.embedded == 1
    same_as_fresh(index, corpus, tmp_path)
    assert qa.load(index, HASH).search("滕王阁始建于哪一年？")[0].article_id == "tengwang.txt"


def test_an_edited_or_removed_file_is_noticed(corpus, tmp_path, reads):
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    reads.clear()
    name = sorted(p.name for p in corpus.iterdir())[0]
    path = corpus / name
    text = path.read_text(encoding="utf-8")
    stamp = path.stat()
    # The same size and modification time, other bytes: the change time still moves.
    path.write_text(text.replace("。", "！", 1), encoding="utf-8")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    removed = sorted(p.name for p in corpus.iterdir())[-1]
    (corpus / removed).unlink()

    stats = qa.build(corpus, index, HASH)

    assert reads == [name]
    assert (stats.changed, stats.removed) == (1, 1)
    same_as_fresh(index, corpus, tmp_path)


def test_a_new_record_taking_an_unchanged_files_id_makes_the_build_read_everything(tmp_path, reads):
    corpus = write_corpus(
        tmp_path / "corpus",
        {
            "a.jsonl": json.dumps({"id": "x", "title": "甲", "text": "北京今天下雨。"}) + "\n",
            "c.txt": "丙\n\n上海今天晴天。\n",
        },
    )
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    reads.clear()
    (corpus / "b.jsonl").write_text(
        json.dumps({"id": "x", "title": "乙", "text": "广州今天多云。"}) + "\n", encoding="utf-8"
    )

    stats = qa.build(corpus, index, HASH)

    # "x" is now the id of records in two files: both are scoped by their file, which
    # changes the id of the unchanged one, so every file is read as if none were known.
    assert reads == ["b.jsonl", "a.jsonl", "b.jsonl", "c.txt"]
    ids = json.loads((live(index) / "article_ids.json").read_text(encoding="utf-8"))
    assert ids == ["a.jsonl/x", "b.jsonl/x", "c.txt"]
    assert any("also the id of another article" in n for n in stats.notes)
    same_as_fresh(index, corpus, tmp_path)


def test_an_unchanged_files_skipped_records_and_notes_are_still_reported(tmp_path, reads):
    lines = [
        json.dumps({"id": "x", "title": "甲", "text": "北京今天下雨。"}),
        "{not json",
        json.dumps({"id": "x", "title": "甲", "text": "重复的记录。"}),
    ]
    corpus = write_corpus(tmp_path / "corpus", {"a.jsonl": "\n".join(lines) + "\n"})
    # A few bytes no encoding reads: replaced, with a note.
    text = "标题\n\n南京今天有雾，能见度不足五百米，机场航班延误。\n" * 20
    (corpus / "bad.txt").write_bytes(text.encode() + b"\xff\xfe\x80" + text.encode())
    index = tmp_path / "index"
    first = qa.build(corpus, index, HASH)
    assert first.skipped and first.notes
    reads.clear()

    again = qa.build(corpus, index, HASH)

    assert reads == []
    assert (again.skipped, again.notes) == (first.skipped, first.notes)
    assert (again.unchanged, again.articles, again.paragraphs) == (
        first.articles,
        first.articles,
        first.paragraphs,
    )
    same_as_fresh(index, corpus, tmp_path)


def test_another_corpus_folder_or_other_splitting_reads_every_file(corpus, tmp_path, reads):
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)  # the same names, sizes and modification times
    reads.clear()

    qa.build(copy, index, HASH)
    assert len(reads) == len(list(copy.iterdir()))

    reads.clear()
    qa.build(copy, index, qa.Settings(model="hash", progress=False, passage_chars=200))
    assert len(reads) == len(list(copy.iterdir()))


def test_a_damaged_record_of_what_was_read_costs_only_reading_every_file(corpus, tmp_path, reads):
    """read.json is checked against the manifest like every file, but only the next build
    reads it: the index answers without it, and a damaged one makes that build read every
    file (rather than trust it, or throw the index away and embed everything again)."""
    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    before = [answer_key(qa.load(index, HASH).ask(q)) for q in ANSWERABLE]
    path = live(index) / "read.json"
    read = json.loads(path.read_text(encoding="utf-8"))
    assert set(read["files"]) == {p.name for p in corpus.iterdir()}
    read["files"].clear()  # valid JSON, but not what the build wrote (its checksum)
    path.write_text(json.dumps(read), encoding="utf-8")
    assert [answer_key(qa.load(index, HASH).ask(q)) for q in ANSWERABLE] == before
    reads.clear()

    stats = qa.build(corpus, index, HASH)

    assert sorted(reads) == sorted(p.name for p in corpus.iterdir())
    assert (stats.unchanged, stats.embedded) == (stats.articles, 0)
    path = live(index) / "read.json"
    path.write_bytes(path.read_bytes()[:100])  # truncated
    reads.clear()
    assert qa.build(corpus, index, HASH).embedded == 0
    assert len(reads) == len(list(corpus.iterdir()))
    same_as_fresh(index, corpus, tmp_path)


def test_a_remembered_entry_of_another_shape_is_not_used(corpus, tmp_path, reads):
    """Should an index hold an entry this code did not write (checksums made to match), the
    file is read, not trusted or crashed on."""
    from qa.stores.folder import disk

    index = tmp_path / "index"
    qa.build(corpus, index, HASH)
    path = live(index) / "read.json"
    read = json.loads(path.read_text(encoding="utf-8"))
    name = sorted(read["files"])[0]
    read["files"][name]["found"] = [["x", "yes", 3, None, "many"]]
    path.write_text(json.dumps(read), encoding="utf-8")
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["read.json"] = path.stat().st_size
    manifest["checksums"]["read.json"] = disk.checksum(path)
    manifest["digest"] = disk.manifest_digest(manifest)
    (index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    reads.clear()

    stats = qa.build(corpus, index, HASH)

    assert reads == [name]
    assert stats.unchanged == stats.articles
    same_as_fresh(index, corpus, tmp_path)
