"""Large-index features on tiny data: the stored approximate-search index, half-precision
vectors, and embedding backends that are never mixed in one index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ANSWERABLE, HASH, PARAGRAPHS, HashEmbedder, answer_key

import qa
from qa.stores import folder as store


def live_data(index: Path) -> Path:
    return index / json.loads((index / "manifest.json").read_text(encoding="utf-8"))["data"]


def test_vectors_are_stored_in_half_precision(built_index):
    vectors = np.load(live_data(built_index) / "vectors.npy")

    assert vectors.dtype == np.float16
    assert np.allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1.0, atol=1e-2)


def test_small_index_searches_exactly_without_a_stored_graph(built_index):
    assert not (live_data(built_index) / store.ANN_FILE).exists()
    assert qa.load(built_index, HASH).index.data.ann is None


def test_large_index_stores_a_graph_that_finds_what_exact_search_finds(
    built_index, corpus, tmp_path, monkeypatch
):
    exact = qa.load(built_index, HASH)
    monkeypatch.setattr(store.search, "EXACT_UP_TO", 0)  # every index counts as large
    large = tmp_path / "large"
    qa.build(corpus, large, HASH)

    assert (live_data(large) / store.ANN_FILE).is_file()
    bot = qa.load(large, HASH)
    assert bot.index.data.ann is not None and bot.index.data.ann.ntotal == PARAGRAPHS
    for question in ANSWERABLE:
        assert [p.article_id for p in bot.search(question, 3)] == [
            p.article_id for p in exact.search(question, 3)
        ]


def test_a_damaged_graph_is_refused_and_a_build_repairs_it(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(store.search, "EXACT_UP_TO", 0)
    index = tmp_path / "large"
    qa.build(corpus, index, HASH)
    path = live_data(index) / store.ANN_FILE
    path.write_bytes(b"\x00" * path.stat().st_size)

    with pytest.raises(qa.IndexCorruptError, match="qa build"):
        qa.load(index, HASH)
    qa.build(corpus, index, HASH)
    assert qa.load(index, HASH).search("赣服通集成了多少项服务?", 1)[0].article_id == (
        "ganfutong.txt"
    )


class OtherBackend(HashEmbedder):
    """The same model name computed by another backend: close vectors, but not equal."""

    backend = "other"


def test_changing_the_backend_re_embeds_and_is_recorded(built_index, corpus):
    stats = qa.build(corpus, built_index, HASH, embedder=OtherBackend())

    assert stats.embedded == PARAGRAPHS
    manifest = json.loads((built_index / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["model"], manifest["backend"]) == ("hash", "other")
    # and back: none of the other backend's vectors are reused
    assert qa.build(corpus, built_index, HASH).embedded == PARAGRAPHS


def test_an_unknown_backend_is_refused_with_the_choices():
    from qa.index.embed import make_embedder

    with pytest.raises(qa.QAError, match="torch, onnx, onnx-int8"):
        make_embedder("m3e-small", backend="tensorrt")


def test_a_rebuild_reuses_every_vector_even_when_a_hash_ends_in_a_zero_byte(tmp_path):
    from qa.build import passage_key

    # numpy drops trailing NUL bytes of stored hashes: such a chunk was re-embedded each time.
    text = next(
        t
        for t in (f"赣服通第{n}次更新,新增了多项服务。" for n in range(5000))
        if passage_key("hash", t).endswith(b"\0")
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(f"更新\n\n{text}\n", encoding="utf-8")
    assert qa.build(corpus, tmp_path / "index", HASH).embedded == 1

    assert qa.build(corpus, tmp_path / "index", HASH).embedded == 0


def is_mapped(array: np.ndarray) -> bool:
    """Is the array's memory a mapped file (the array itself, or what it is a view of)?"""
    while array is not None:
        if isinstance(array, np.memmap):
            return True
        array = array.base
    return False


def test_a_load_maps_the_big_arrays_and_answers_as_if_it_read_them(built_index, monkeypatch):
    """At a million passages reading every array was most of a load (issue 23): a load maps
    them, and every answer is the one the arrays read whole give."""
    mapped = qa.load(built_index, HASH)
    data = mapped.index.data
    assert is_mapped(data.vectors) and is_mapped(data.postings.docs)
    assert is_mapped(data.passages.sentence_start)

    monkeypatch.setattr(store.load, "_load", lambda path: np.load(path, allow_pickle=False))
    whole = qa.load(built_index, HASH)
    assert not is_mapped(whole.index.data.vectors)
    for question in ANSWERABLE:
        assert answer_key(mapped.ask(question)) == answer_key(whole.ask(question))
        assert [(p.article_id, p.score) for p in mapped.search(question, 5)] == [
            (p.article_id, p.score) for p in whole.search(question, 5)
        ]


def resident_kb(array: np.ndarray) -> int:
    """How much of the file mapping holding `array` is in this process's memory (its Rss
    in /proc/self/smaps)."""
    address, inside = array.ctypes.data, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):  # a mapping's first line: start-end
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("Rss:"):
            return int(line.split()[1])
    raise AssertionError("not a mapping of this process")


@pytest.mark.skipif(not Path("/proc/self/smaps").is_file(), reason="Linux /proc needed")
def test_a_search_hands_the_pages_it_touched_back_and_answers_the_same(
    corpus, tmp_path, monkeypatch
):
    """At a million passages 200 questions left gigabytes of index files mapped into the
    process (its RSS): a large index unmaps them after each search (issue 23)."""
    monkeypatch.setattr(store.search, "EXACT_UP_TO", 0)  # every index counts as large
    qa.build(corpus, tmp_path / "index", HASH)
    kept = qa.load(tmp_path / "index", HASH)
    monkeypatch.setattr(store.search, "RELEASE_ABOVE", 0)
    released = qa.load(tmp_path / "index", HASH)
    assert kept.index._mapped == [] and released.index._mapped
    postings = released.index.data.postings.docs

    for question in ANSWERABLE:
        assert answer_key(released.ask(question)) == answer_key(kept.ask(question))
        assert resident_kb(postings) == 0
        assert [(p.article_id, p.score) for p in released.search(question, 5)] == [
            (p.article_id, p.score) for p in kept.search(question, 5)
        ]
    assert resident_kb(postings) == 0
    kept.ask(next(iter(ANSWERABLE)))
    assert resident_kb(kept.index.data.postings.docs) > 0  # what it is without releasing


def test_a_load_finds_articles_by_the_stored_line_ends(built_index):
    """The build stores where each line of articles.jsonl ends, so a load does not scan it."""
    gen = live_data(built_index)
    ends = np.load(gen / store.disk.ARTICLE_ENDS)
    text = (gen / "articles.jsonl").read_bytes()
    assert ends.tolist() == [i for i, b in enumerate(text) if b == 0x0A]
    bot = qa.load(built_index, HASH)
    assert [a.article.id for a in bot.index.passages.articles] == json.loads(
        (gen / "article_ids.json").read_text(encoding="utf-8")
    )


@pytest.fixture
def listed(monkeypatch):
    """Every index counts as one past a few hundred thousand passages: inverted lists."""
    monkeypatch.setattr(store.search, "EXACT_UP_TO", 0)
    monkeypatch.setattr(store.search, "LISTS_FROM", 0)
    monkeypatch.setattr(store.search, "lists_for", lambda n: 4)


def list_of_passages(bot) -> dict[str, int]:
    rows = store.search._list_of_rows(bot.index.data.ann)
    return {bot.index.passages.passage(r).text: int(rows[r]) for r in range(len(rows))}


def test_a_very_large_index_searches_inverted_lists_and_finds_what_exact_search_finds(
    built_index, corpus, tmp_path, listed
):
    import faiss

    exact = qa.load(built_index, HASH)
    large = tmp_path / "large"
    qa.build(corpus, large, HASH)

    bot = qa.load(large, HASH)
    assert isinstance(bot.index.data.ann, faiss.IndexIVFScalarQuantizer)
    for question in ANSWERABLE:
        assert answer_key(bot.ask(question)) == answer_key(exact.ask(question))


def test_a_rebuild_keeps_the_trained_lists_and_adds_new_passages_to_them(corpus, tmp_path, listed):
    index = tmp_path / "large"
    qa.build(corpus, index, HASH)
    before = qa.load(index, HASH)
    centroids = before.index.data.ann.quantizer.reconstruct_n(0, 4)
    (corpus / "new.txt").write_text(
        "新闻\n\n市政府今天公布了新的公交线路，共有十二条。\n", encoding="utf-8"
    )

    stats = qa.build(corpus, index, HASH)

    after = qa.load(index, HASH)
    assert stats.embedded == 1 and after.index.data.ann.ntotal == PARAGRAPHS + 1
    assert np.array_equal(after.index.data.ann.quantizer.reconstruct_n(0, 4), centroids)
    kept, now = list_of_passages(before), list_of_passages(after)
    assert all(now[text] == number for text, number in kept.items())
    assert after.search("新的公交线路有几条?", 1)[0].article_id == "new.txt"


def lists(ann) -> list[tuple[list[int], bytes]]:
    """Each inverted list: its ids in order and their codes."""
    import faiss

    out = []
    for number in range(ann.nlist):
        count = ann.invlists.list_size(number)
        ids = faiss.rev_swig_ptr(ann.invlists.get_ids(number), count).tolist() if count else []
        size = count * ann.code_size
        codes = bytes(faiss.rev_swig_ptr(ann.invlists.get_codes(number), size)) if count else b""
        out.append((ids, codes))
    return out


def test_a_rebuild_lists_every_vector_as_adding_them_all_again_would(corpus, tmp_path, listed):
    """A rebuild renumbers the kept passages in the stored lists and codes only the new
    ones: the lists are those of coding every vector again with the same training."""
    import faiss

    index = tmp_path / "large"
    qa.build(corpus, index, HASH)
    previous = faiss.read_index(str(live_data(index) / store.ANN_FILE))
    names = sorted(p.name for p in corpus.iterdir())
    (corpus / names[0]).unlink()  # the first rows go: every kept row moves up
    path = corpus / names[1]
    path.write_text(
        path.read_text(encoding="utf-8") + "\n\n新加的一段：今天多云。\n", encoding="utf-8"
    )
    (corpus / "new.txt").write_text(
        "新闻\n\n市政府今天公布了新的公交线路，共有十二条。\n", encoding="utf-8"
    )
    old_keys = {bytes(k).ljust(16, b"\0"): r for r, k in enumerate(store.read_index(index).keys)}

    qa.build(corpus, index, HASH)

    data = store.read_index(index)
    x = np.ascontiguousarray(data.vectors, dtype=np.float32)
    source = np.array([old_keys.get(bytes(k).ljust(16, b"\0"), -1) for k in data.keys])
    assert (source >= 0).sum() and (source < 0).sum()  # both kept and new passages
    reference = faiss.clone_index(previous)
    reference.reset()
    assigned = reference.quantizer.assign(x, 1).ravel()
    assigned[source >= 0] = store.search._list_of_rows(previous)[source[source >= 0]]
    reference.add_core(len(x), faiss.swig_ptr(x), None, faiss.swig_ptr(assigned))
    assert lists(data.ann) == lists(reference)


def test_a_small_index_ranks_keywords_by_the_full_scores_as_before(built_index, monkeypatch):
    """Below EXACT_UP_TO (every public evaluation set) nothing of the large-index search
    runs: the same exact dense search and full BM25 scores, so the same answers."""
    from qa.index.bm25 import BM25

    def never(*args, **kwargs):
        raise AssertionError("a small index used the pruned keyword search")

    monkeypatch.setattr(BM25, "top", never)
    monkeypatch.setattr(BM25, "scores_of", never)
    bot = qa.load(built_index, HASH)
    assert bot.index.data.ann is None
    for question in ANSWERABLE:
        assert bot.ask(question).found


def test_a_rebuild_that_adds_an_article_parses_none_of_the_stored_ones(
    built_index, corpus, monkeypatch
):
    """At a million passages parsing every stored article (a gigabyte of JSON) was a
    quarter of a rebuild: their content hashes are stored beside them (issue 23)."""
    parsed = []
    parse = store.load.ArticleFile.__getitem__
    monkeypatch.setattr(
        store.load.ArticleFile, "__getitem__", lambda self, i: parsed.append(i) or parse(self, i)
    )
    (corpus / "new.txt").write_text("新闻\n\n市政府今天公布了新的公交线路。\n", encoding="utf-8")

    stats = qa.build(corpus, built_index, HASH)

    assert (stats.added, stats.unchanged, parsed) == (1, 4, [])
    (corpus / "new.txt").unlink()
    assert qa.build(corpus, built_index, HASH).removed == 1  # parses only what it drops
    assert len(set(parsed)) == 1


NEW_FILES = ("article_ends.npy", "article_hashes.json", "bm25_bound.npy")


def as_written_before_issue_23(index: Path) -> None:
    """Make `index` what a build wrote before the files of large indexes existed."""
    path = index / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for name in NEW_FILES:
        (live_data(index) / name).unlink()
        for listing in (manifest["files"], manifest["checksums"], manifest["blocks"]):
            listing.pop(name, None)
    manifest["digest"] = store.manifest_digest(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def test_an_index_written_before_the_large_index_files_answers_the_same_and_is_completed(
    built_index, corpus, monkeypatch
):
    monkeypatch.setattr(store.search, "EXACT_UP_TO", 0)  # the pruned keyword search too
    qa.build(corpus, built_index, HASH)
    before = [answer_key(qa.load(built_index, HASH).ask(q)) for q in ANSWERABLE]
    as_written_before_issue_23(built_index)

    assert [answer_key(qa.load(built_index, HASH).ask(q)) for q in ANSWERABLE] == before
    stats = qa.build(corpus, built_index, HASH)
    assert (stats.embedded, stats.unchanged) == (0, stats.articles)
    assert all((live_data(built_index) / name).is_file() for name in NEW_FILES)
    assert [answer_key(qa.load(built_index, HASH).ask(q)) for q in ANSWERABLE] == before
