"""Loading an index: damaged or foreign files are refused with a message saying what to run,
and `qa.build` repairs them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import HASH, OFF_TOPIC, PARAGRAPHS, answer_key

import qa
from qa.stores import folder as store

QUESTION = "赣服通集成了多少项服务?"


def live_data(index: Path) -> Path:
    return index / json.loads((index / "manifest.json").read_text(encoding="utf-8"))["data"]


def edit_manifest(index: Path, change) -> None:
    path = index / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def truncate_vectors(index: Path) -> None:
    path = live_data(index) / "vectors.npy"
    path.write_bytes(path.read_bytes()[:1000])


def delete_articles(index: Path) -> None:
    (live_data(index) / "articles.jsonl").unlink()


def delete_data_folder(index: Path) -> None:
    shutil.rmtree(live_data(index))


def garble_vectors_same_size(index: Path) -> None:
    path = live_data(index) / "vectors.npy"
    path.write_bytes(b"\x00" * path.stat().st_size)


def wrong_counts(index: Path) -> None:
    edit_manifest(index, lambda m: m["counts"].update(articles=99))


def wrong_dim(index: Path) -> None:
    edit_manifest(index, lambda m: m.update(dim=128))


def unreadable_manifest(index: Path) -> None:
    (index / "manifest.json").write_text('{"format": 1, "model": "ha', encoding="utf-8")


DAMAGE = [
    truncate_vectors,
    delete_articles,
    delete_data_folder,
    garble_vectors_same_size,
    wrong_counts,
    wrong_dim,
    unreadable_manifest,
]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_damaged_index_is_refused_and_a_build_repairs_it(built_index, corpus, damage):
    before = answer_key(qa.load(built_index, HASH).ask(QUESTION))
    damage(built_index)

    with pytest.raises(qa.IndexCorruptError) as raised:
        qa.load(built_index, HASH)
    message = str(raised.value)
    assert "qa build" in message and str(built_index) in message
    assert "\n" not in message

    stats = qa.build(corpus, built_index, HASH)
    assert stats.embedded == PARAGRAPHS  # nothing damaged is reused
    assert answer_key(qa.load(built_index, HASH).ask(QUESTION)) == before


@pytest.mark.parametrize("version", [0, 3, "2", True, None])
def test_index_of_another_format_version_is_refused_and_rebuilt(built_index, corpus, version):
    edit_manifest(built_index, lambda m: m.update(format=version))

    with pytest.raises(qa.IndexMismatchError, match=r"format .*qa build"):
        qa.load(built_index, HASH)

    qa.build(corpus, built_index, HASH)
    assert qa.load(built_index, HASH).ask(QUESTION).found


def as_written_before_the_rename(index: Path) -> None:
    """Make `index` what a build wrote before passages were called passages: chunk_*.npy,
    "chunks" among the counts, "chunk_chars" among the settings (the digest to match)."""
    path = index / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for name in [n for n in manifest["files"] if n.startswith("passage_")]:
        old = name.replace("passage_", "chunk_")
        (live_data(index) / name).rename(live_data(index) / old)
        for listing in (manifest["files"], manifest["checksums"], manifest["blocks"]):
            if name in listing:
                listing[old] = listing.pop(name)
    manifest["counts"]["chunks"] = manifest["counts"].pop("passages")
    manifest["settings"]["chunk_chars"] = manifest["settings"].pop("passage_chars")
    manifest["digest"] = store.manifest_digest(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    assert (live_data(index) / "chunk_article.npy").is_file()


def test_index_written_before_the_rename_answers_and_is_rebuilt_without_embedding(
    built_index, corpus
):
    before = [answer_key(qa.load(built_index, HASH).ask(q)) for q in (QUESTION, *OFF_TOPIC)]
    as_written_before_the_rename(built_index)

    assert [answer_key(qa.load(built_index, HASH).ask(q)) for q in (QUESTION, *OFF_TOPIC)] == before
    stats = qa.build(corpus, built_index, HASH)
    assert (stats.embedded, stats.unchanged) == (0, stats.articles)  # every vector reused
    assert (live_data(built_index) / "passage_article.npy").is_file()
    assert [answer_key(qa.load(built_index, HASH).ask(q)) for q in (QUESTION, *OFF_TOPIC)] == before


def as_written_with_per_passage_counts(index: Path) -> None:
    """Make `index` what a build wrote before the keyword counts were kept term-major:
    terms_*.npy (a passages x vocabulary CSR matrix of counts), no bm25_tf / bm25_lengths."""
    data = store.read_index(index, for_build=True)
    p = data.postings
    matrix = sp.csc_matrix(
        (p.tf.astype(np.float32), p.docs, p.indptr), shape=(p.n_docs, len(p.vocab))
    ).tocsr()
    gen = live_data(index)
    np.save(gen / "terms_indptr.npy", matrix.indptr.astype(np.int64))
    np.save(gen / "terms_indices.npy", matrix.indices.astype(np.int32))
    np.save(gen / "terms_counts.npy", matrix.data.astype(np.float32))

    def change(manifest):
        for name in ("bm25_tf.npy", "bm25_lengths.npy"):
            (gen / name).unlink()
            for listing in (manifest["files"], manifest["checksums"], manifest["blocks"]):
                listing.pop(name, None)
        for name in ("terms_indptr.npy", "terms_indices.npy", "terms_counts.npy"):
            manifest["files"][name] = (gen / name).stat().st_size
            manifest["checksums"][name] = store.disk.checksum(gen / name)
        manifest["digest"] = store.manifest_digest(manifest)

    edit_manifest(index, change)


def test_index_with_per_passage_counts_answers_and_a_rebuild_keeps_its_counts(
    built_index, corpus, tmp_path
):
    before = [answer_key(qa.load(built_index, HASH).ask(q)) for q in (QUESTION, *OFF_TOPIC)]
    as_written_with_per_passage_counts(built_index)
    assert [answer_key(qa.load(built_index, HASH).ask(q)) for q in (QUESTION, *OFF_TOPIC)] == before

    (corpus / "tengwang.txt").write_text(
        "滕王阁简介\n\n滕王阁位于南昌市赣江东岸，始建于唐永徽四年。\n", encoding="utf-8"
    )
    qa.build(corpus, built_index, HASH)
    qa.build(corpus, tmp_path / "fresh", HASH)

    assert (live_data(built_index) / "bm25_tf.npy").is_file()
    assert not (live_data(built_index) / "terms_counts.npy").exists()
    rebuilt = qa.load(built_index, HASH)
    fresh = qa.load(tmp_path / "fresh", HASH)
    for q in (QUESTION, "滕王阁始建于哪一年?", *OFF_TOPIC):
        assert answer_key(rebuilt.ask(q)) == answer_key(fresh.ask(q))
        assert [p.score for p in rebuilt.search(q)] == [p.score for p in fresh.search(q)]


def test_loading_with_another_model_is_refused(built_index):
    with pytest.raises(qa.IndexMismatchError) as raised:
        qa.load(built_index, qa.Settings(model="m3e-small"))
    message = str(raised.value)
    assert "'hash'" in message and "m3e-small" in message
    assert "qa build --model m3e-small" in message


def test_load_without_a_model_uses_the_index_model(built_index):
    bot = qa.load(built_index)
    assert bot.info().model == "hash"
    assert bot.ask(QUESTION).found


@pytest.mark.parametrize("make", ["nothing", "empty-folder", "lock-only"])
def test_missing_index_says_to_build(tmp_path, make):
    index = tmp_path / "index"
    if make != "nothing":
        index.mkdir()
    if make == "lock-only":  # a first build that died before writing anything
        (index / ".lock").write_text("", encoding="utf-8")

    with pytest.raises(qa.IndexNotFoundError, match="qa build"):
        qa.load(index)


def test_load_that_races_a_build_commit_still_succeeds(built_index, corpus, monkeypatch):
    """A reader that read the old manifest just before a build committed a new generation.

    `qa ask` or the UI may load while `qa build` runs in another process; the build
    deletes the old data folder right after its commit.
    """
    (corpus / "metro.md").unlink()
    real = store.read_manifest
    raced = []

    def manifest_then_a_build_commits(folder):
        manifest = real(folder)
        if not raced:
            raced.append(True)
            qa.build(corpus, built_index, HASH)
        return manifest

    monkeypatch.setattr(store.load, "read_manifest", manifest_then_a_build_commits)
    bot = qa.load(built_index, HASH)
    assert bot.ask(QUESTION).found


# -- big files: per-block digests, sampled at load, article text checked before use -------


@pytest.fixture
def blocked_index(corpus, tmp_path, monkeypatch) -> Path:
    """An index whose files all count as big: small blocks, each file checked by sample."""
    monkeypatch.setattr(store.disk, "FULL_CHECKSUM_UP_TO", 0)
    monkeypatch.setattr(store.disk, "BLOCK_BYTES", 512)
    index = tmp_path / "blocked"
    qa.build(corpus, index, HASH)
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["checksums"] == {} and "articles.jsonl" in manifest["blocks"]
    return index


def test_big_file_swapped_or_zeroed_is_refused_at_load(blocked_index):
    garble_vectors_same_size(blocked_index)
    with pytest.raises(qa.IndexCorruptError, match="vectors.npy"):
        qa.load(blocked_index, HASH)


def test_big_article_file_edited_in_place_is_never_quoted(blocked_index):
    bot = qa.load(blocked_index, HASH)
    assert "6697" in bot.ask(QUESTION).text
    path = live_data(blocked_index) / "articles.jsonl"
    path.write_text(path.read_text(encoding="utf-8").replace("6697", "9999"), encoding="utf-8")

    # Loading samples big files; the edited article is checked when it is first read.
    bot = qa.load(blocked_index, HASH)
    with pytest.raises(qa.IndexCorruptError, match="qa build"):
        bot.ask(QUESTION)


def test_index_written_with_another_block_size_is_read_by_its_own(blocked_index, monkeypatch):
    """A release that changes BLOCK_BYTES still reads the article text of older indexes."""
    before = qa.load(blocked_index, HASH).ask(QUESTION)
    monkeypatch.undo()  # this process now writes 256 KB blocks; the index has 512-byte ones
    assert answer_key(qa.load(blocked_index, HASH).ask(QUESTION)) == answer_key(before)


def test_queries_answer_the_same_from_stored_and_derived_keyword_bounds(built_index):
    bot = qa.load(built_index, HASH)
    manifest = json.loads((built_index / "manifest.json").read_text(encoding="utf-8"))
    data = store.read_index(built_index)
    derived = qa.Assistant(store.FolderIndex(dataclasses.replace(data, bound=None)), HASH)
    assert manifest["files"]["bm25_bound.npy"] > 0
    assert [p.score for p in bot.search(QUESTION)] == [p.score for p in derived.search(QUESTION)]


def test_a_build_hashes_every_block_of_article_text_and_the_sampled_blocks_of_arrays(
    corpus, tmp_path, monkeypatch
):
    monkeypatch.setattr(store.disk, "FULL_CHECKSUM_UP_TO", 0)
    monkeypatch.setattr(store.disk, "BLOCK_BYTES", 64)
    index = tmp_path / "blocked"
    qa.build(corpus, index, HASH)
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    for name, digests in manifest["blocks"].items():
        hashed = [b for b, d in enumerate(digests) if d is not None]
        if name == "articles.jsonl":  # each article's block is checked when it is first read
            assert hashed == list(range(len(digests)))
        else:  # a load checks these only
            assert hashed == store.disk.sampled_blocks(len(digests)), name
    assert len(manifest["blocks"]["vectors.npy"]) > store.disk.SAMPLED_BLOCKS
    assert "6697" in qa.load(index, HASH).ask(QUESTION).text

    # An index written when every block was hashed loads as before.
    gen = live_data(index)
    for name in manifest["blocks"]:
        data = (gen / name).read_bytes()
        manifest["blocks"][name] = [
            hashlib.blake2b(data[i : i + 64], digest_size=16).hexdigest()
            for i in range(0, len(data), 64)
        ]
    manifest["digest"] = store.disk.manifest_digest(manifest)
    (index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert "6697" in qa.load(index, HASH).ask(QUESTION).text
