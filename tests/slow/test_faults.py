"""Faults a build or a server must survive: a build killed outright, two builds at once, a
server answering while its index is replaced, damaged index files, a full or read-only disk.

Each test checks what a user would notice: the previous index still answers the same, the
error is one line saying what to do, the next build completes and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ANSWERABLE, ARTICLES, HASH, PARAGRAPHS, answer_key, write_corpus

import qa
from qa import cli
from qa.index.embed import HashEmbedder
from qa.stores import folder as store
from ui import live as live_index
from ui.service import Service

NEW_ARTICLE = (
    "滕王阁简介\n\n滕王阁位于南昌市赣江东岸，始建于唐永徽四年，因王勃的《滕王阁序》而闻名。\n"
)
NEW_QUESTION = "滕王阁始建于哪一年?"
ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0  # seconds a helper process may take to reach a point (never asserted on)


def answers(index: Path) -> list[tuple]:
    bot = qa.load(index, HASH)
    return [answer_key(bot.ask(q)) for q in ANSWERABLE]


def leftovers(index: Path) -> list[str]:
    """Temporary files and dead generations: a finished build leaves none."""
    live = store.live_generation(index)
    return sorted(
        p.name
        for p in index.iterdir()
        if p.name.startswith((".tmp-", "manifest.json.tmp"))
        or (p.name.startswith("data-") and p.name != live)
    )


def change_corpus(corpus: Path) -> None:
    """One article removed, one added: a rebuild has something to read, embed and write."""
    (corpus / "porcelain.txt").unlink()
    (corpus / "tengwang.txt").write_text(NEW_ARTICLE, encoding="utf-8")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=ROOT,
    )


# -- 1. a build killed with SIGKILL --------------------------------------------------------

# Runs `qa build` in a child process that stops at `point`, says so by writing `ready`, and
# then waits (to be killed, or until `go` exists). Only this process is patched.
BUILD_UNTIL = """
import importlib, os, sys, time
from pathlib import Path

import qa
from qa.stores import folder as store
from qa.index.embed import HashEmbedder

corpus, index, point, ready, go = sys.argv[1:6]
reader = importlib.import_module("qa.read.corpus")  # read_corpus calls its read_path


def stop_here():
    Path(ready).write_text(str(os.getpid()))
    deadline = time.monotonic() + 600
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


if point == "reading":  # between two files of the corpus
    real_read, files = reader.read_path, []

    def read_path(path, root, *progress):
        files.append(path)
        if len(files) == 2:
            stop_here()
        return real_read(path, root, *progress)

    reader.read_path = read_path
elif point == "embedding":  # new text embedded, nothing written yet
    real_encode = HashEmbedder.encode

    def encode(self, texts, *, progress=False):
        vectors = real_encode(self, texts, progress=progress)
        stop_here()
        return vectors

    HashEmbedder.encode = encode
elif point == "writing":  # halfway through writing the new generation's vectors
    real_save = store.disk._save_npy

    def save_npy(path, array):
        if path.name == "vectors.npy":
            with open(path, "wb") as f:
                f.write(b"\\x93NUMPY half a file")
            stop_here()
        real_save(path, array)

    store.disk._save_npy = save_npy
elif point == "committed":  # manifest replaced, the old generation not yet removed
    real_remove = store.disk.remove_stale

    def remove_stale(folder):
        stop_here()
        real_remove(folder)

    store.disk.remove_stale = remove_stale

qa.build(corpus, index, qa.Settings(model="hash", progress=False))
"""


def start_build(corpus: Path, index: Path, point: str, tmp: Path) -> tuple[subprocess.Popen, Path]:
    """A `qa build` process held at `point`; returns it and the file that lets it go on."""
    ready, go = tmp / f"ready-{point}", tmp / f"go-{point}"
    script = textwrap.dedent(BUILD_UNTIL)
    args = [str(corpus), str(index), point, str(ready), str(go)]
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + WAIT
    while not ready.exists():
        if process.poll() is not None:
            pytest.fail(f"the build ended before {point}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the build never reached {point}")
        time.sleep(0.02)
    return process, go


@pytest.mark.parametrize("point", ["reading", "embedding", "writing"])
def test_build_killed_before_its_commit_leaves_the_previous_index(
    built_index, corpus, tmp_path, point
):
    before = answers(built_index)
    live = store.live_generation(built_index)
    change_corpus(corpus)

    process, _ = start_build(corpus, built_index, point, tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=WAIT) == -signal.SIGKILL

    # The previous index is untouched and answers exactly as before.
    assert store.live_generation(built_index) == live
    assert answers(built_index) == before
    if point == "writing":
        assert any(name.startswith(".tmp-") for name in leftovers(built_index))
    # The dead build's lock does not block the next one, which cleans up after it.
    if point != "reading":  # the lock is taken once the corpus is read
        assert (built_index / ".lock").read_text() == f"pid {process.pid}"
    stats = qa.build(corpus, built_index, HASH)
    assert (stats.added, stats.removed, stats.articles) == (1, 1, 4)
    assert leftovers(built_index) == []
    assert qa.load(built_index, HASH).ask(NEW_QUESTION).found


def test_build_killed_after_its_commit_leaves_the_new_index(built_index, corpus, tmp_path):
    old = store.live_generation(built_index)
    change_corpus(corpus)

    process, _ = start_build(corpus, built_index, "committed", tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=WAIT) == -signal.SIGKILL

    assert leftovers(built_index) == [old]  # the old generation, no longer live
    bot = qa.load(built_index, HASH)
    assert bot.ask(NEW_QUESTION).found
    assert "porcelain.txt" not in {a.article.id for a in bot.passages.articles}
    stats = qa.build(corpus, built_index, HASH)
    assert (stats.added, stats.removed, stats.embedded) == (0, 0, 0)
    assert leftovers(built_index) == []


# -- 2. two builds at once -----------------------------------------------------------------


def article_ids(index: Path) -> list[str]:
    return [a.article.id for a in qa.load(index, HASH).passages.articles]


def test_second_build_process_stops_with_a_clear_message_and_nothing_is_mixed(
    built_index, corpus, tmp_path
):
    # Build A indexes the changed corpus; build B, started while A runs, another corpus.
    change_corpus(corpus)
    other = write_corpus(tmp_path / "other", {"metro.md": ARTICLES["metro.md"]})
    reference = tmp_path / "reference"
    qa.build(corpus, reference, HASH)

    first, go = start_build(corpus, built_index, "embedding", tmp_path)
    second = run_cli(
        "build", "--corpus", str(other), "--index", str(built_index), "--model", "hash"
    )
    go.write_text("")
    first_out = first.communicate(timeout=WAIT)

    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Another build is already writing" in lines[0]
    assert f"pid {first.pid}" in lines[0] and "qa build" in lines[0]
    assert first.returncode == 0, first_out[1]
    # Exactly build A's index: its articles, its answers, nothing of B.
    assert article_ids(built_index) == article_ids(reference)
    assert answers(built_index) == answers(reference)
    assert leftovers(built_index) == []

    again = run_cli("build", "--corpus", str(other), "--index", str(built_index), "--model", "hash")
    assert again.returncode == 0, again.stderr
    assert article_ids(built_index) == ["metro.md"]


# -- 3. a server answering while its index is replaced -------------------------------------


class Askers:
    """Threads asking the fixture questions over and over until stopped; keeps every result."""

    def __init__(self, service: Service, threads: int = 3):
        self.service = service
        self.results: list[tuple[str, object, bool]] = []  # (question, assistant, found)
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, n: int) -> None:
        questions = list(ANSWERABLE)
        i = n
        while not self._stop.is_set() and len(self.results) < 5000:  # bounded
            question = questions[i % len(questions)]
            i += 1
            try:
                answered = self.service.ask(question)
            except BaseException as exc:  # noqa: BLE001 - any error is the failure we look for
                with self._lock:
                    self.errors.append(exc)
                continue
            with self._lock:
                self.results.append((question, answered.assistant, answered.answer.found))

    def __enter__(self) -> Askers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=WAIT)

    def wait_for(self, count: int) -> None:
        """Block until `count` more questions have been answered (bounded)."""
        target = len(self.results) + count
        deadline = time.monotonic() + WAIT
        while len(self.results) < target and time.monotonic() < deadline and not self.errors:
            time.sleep(0.01)


@pytest.fixture
def service(built_index: Path, corpus: Path) -> Service:
    return Service(corpus, built_index, HASH, qa.load(built_index, HASH))


def test_every_question_is_answered_while_the_server_rebuilds(service: Service, corpus):
    old = service.assistant
    change_corpus(corpus)

    with Askers(service) as askers:
        askers.wait_for(10)

        def progress(what: str, done: int, total: int) -> None:
            askers.wait_for(10)  # questions answered while the new index is being built

        lines = service.rebuild(progress)
        askers.wait_for(10)

    assert "索引已更新" in lines[0]
    assert askers.errors == []
    answered_by = {bot for _, bot, _ in askers.results}
    assert old in answered_by and service.assistant in answered_by  # before and after
    # Every fixture question is answerable from the old and the new index alike, except
    # the porcelain one, which the new index no longer holds.
    for question, bot, found in askers.results:
        assert found or (bot is not old and question.startswith("景德镇")), question
    assert service.ask(NEW_QUESTION).answer.found


def test_server_picks_up_an_index_rebuilt_by_another_process(service: Service, corpus, monkeypatch):
    monkeypatch.setattr(live_index, "RELOAD_CHECK_SECONDS", 0.0)
    old = service.assistant
    assert not service.ask(NEW_QUESTION).answer.found
    change_corpus(corpus)

    with Askers(service) as askers:
        askers.wait_for(10)
        built = run_cli(
            "build", "--corpus", str(corpus), "--index", str(service.index), "--model", "hash"
        )
        assert built.returncode == 0, built.stderr
        deadline = time.monotonic() + WAIT
        while service.assistant is old and time.monotonic() < deadline:
            askers.wait_for(1)  # the swap happens in the background, between questions
        askers.wait_for(10)

    assert askers.errors == []
    assert service.assistant is not old  # no restart
    assert {bot for _, bot, _ in askers.results} == {old, service.assistant}
    assert service.ask(NEW_QUESTION).answer.found
    assert "4 篇文章" in service.status()


def test_server_keeps_its_index_when_the_new_one_needs_another_model(
    service: Service, corpus, monkeypatch, capsys
):
    monkeypatch.setattr(live_index, "RELOAD_CHECK_SECONDS", 0.0)
    old = service.assistant

    class OtherModel(HashEmbedder):
        name = "hash-64"

    qa.build(corpus, service.index, HASH, embedder=OtherModel(64))
    service.assistant  # noqa: B018 - notices the new index and tries to load it
    deadline = time.monotonic() + WAIT
    while "not switching" not in capsys.readouterr().err and time.monotonic() < deadline:
        time.sleep(0.01)
        service.assistant  # noqa: B018

    assert service.assistant is old
    assert service.ask("赣服通集成了多少项服务?").answer.found


def test_server_started_without_an_index_picks_up_the_first_build(tmp_path, monkeypatch):
    monkeypatch.setattr(live_index, "RELOAD_CHECK_SECONDS", 0.0)
    corpus = write_corpus(tmp_path / "corpus")
    service = Service(corpus, tmp_path / "index", HASH)
    assert service.assistant is None

    qa.build(corpus, tmp_path / "index", HASH)
    deadline = time.monotonic() + WAIT
    while service.assistant is None and time.monotonic() < deadline:
        time.sleep(0.01)

    assert service.ask("赣服通集成了多少项服务?").answer.found


# -- 4. damaged index files (more cases in test_store.py) ----------------------------------


class SaltedHash(HashEmbedder):
    """Another model with the same name and dimension: its vectors fit the files exactly."""

    def encode(self, texts, *, progress=False):
        return super().encode([f"salt {t}" for t in texts], progress=progress)


def vectors_from_another_model(index: Path, corpus: Path, tmp: Path) -> None:
    qa.build(corpus, tmp / "other", HASH, embedder=SaltedHash())
    target = index / store.live_generation(index) / "vectors.npy"
    shutil.copyfile(tmp / "other" / store.live_generation(tmp / "other") / "vectors.npy", target)


def manifest_names_another_model(index: Path, corpus: Path, tmp: Path) -> None:
    # Questions would be embedded by a 512-dimension model against 256-dimension vectors.
    edit_manifest(index, lambda m: m.update(model="m3e-small"))


def manifest_names_another_generation(index: Path, corpus: Path, tmp: Path) -> None:
    edit_manifest(index, lambda m: m.update(data="data-elsewhere"))


def article_text_edited_in_place(index: Path, corpus: Path, tmp: Path) -> None:
    # Same size, other digits: without checksums this would cite a wrong number.
    path = index / store.live_generation(index) / "articles.jsonl"
    path.write_text(path.read_text(encoding="utf-8").replace("6697", "9999"), encoding="utf-8")


def chunk_array_deleted(index: Path, corpus: Path, tmp: Path) -> None:
    (index / store.live_generation(index) / "sentence_start.npy").unlink()


def manifest_deleted(index: Path, corpus: Path, tmp: Path) -> None:
    (index / "manifest.json").unlink()


def edit_manifest(index: Path, change) -> None:
    path = index / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


DAMAGE = [
    vectors_from_another_model,
    manifest_names_another_model,
    manifest_names_another_generation,
    article_text_edited_in_place,
    chunk_array_deleted,
]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_damage_is_reported_in_one_line_and_a_build_repairs_it(
    built_index, corpus, tmp_path, capsys, damage
):
    before = answers(built_index)
    damage(built_index, corpus, tmp_path)

    with pytest.raises(qa.IndexCorruptError, match="qa build"):
        qa.load(built_index)
    assert cli.main(["ask", "赣服通集成了多少项服务?", "--index", str(built_index)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qa: error: The index at") and "damaged" in err
    assert err.count("\n") == 1  # one line, no traceback

    stats = qa.build(corpus, built_index, HASH)
    assert stats.embedded == PARAGRAPHS  # nothing damaged is reused
    assert answers(built_index) == before


def test_deleted_manifest_says_to_build_and_a_build_restores_the_answers(built_index, corpus):
    before = answers(built_index)
    manifest_deleted(built_index, corpus, corpus)

    with pytest.raises(qa.IndexNotFoundError, match="qa build"):
        qa.load(built_index)
    qa.build(corpus, built_index, HASH)
    assert answers(built_index) == before
    assert leftovers(built_index) == []


# -- 5. a full disk or a read-only index folder --------------------------------------------


def enospc(*args, **kwargs):
    raise OSError(28, "No space left on device")


def disk_full_writing_arrays(monkeypatch, index: Path) -> None:
    monkeypatch.setattr(np, "save", enospc)


def disk_full_at_first_fsync(monkeypatch, index: Path) -> None:
    monkeypatch.setattr(store.disk.os, "fsync", enospc)


def read_only_folder(monkeypatch, index: Path) -> None:
    # What a read-only folder or mount does to every file opened for writing in it.
    real_open = open

    def guarded_open(path, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax+") and Path(path).parent == index:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(store.disk, "open", guarded_open, raising=False)


def read_only_generation_folder(monkeypatch, index: Path) -> None:
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name.startswith(".tmp-"):
            raise OSError(30, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)


WRITE_FAULTS = [
    disk_full_writing_arrays,
    disk_full_at_first_fsync,
    read_only_folder,
    read_only_generation_folder,
]


@pytest.mark.parametrize("fault", WRITE_FAULTS, ids=lambda f: f.__name__)
def test_write_failure_is_one_clear_error_and_the_previous_index_stays(
    built_index, corpus, monkeypatch, capsys, fault
):
    before = answers(built_index)
    live = store.live_generation(built_index)
    change_corpus(corpus)
    fault(monkeypatch, built_index)

    with pytest.raises(qa.IndexWriteError) as raised:
        qa.build(corpus, built_index, HASH)
    argv = ["build", "--corpus", str(corpus), "--index", str(built_index), "--model", "hash"]
    assert cli.main(argv) == 2
    monkeypatch.undo()

    message = str(raised.value)
    assert f"Cannot write the index at {built_index}" in message and "qa build" in message
    assert "\n" not in message
    err = capsys.readouterr().err
    assert err.startswith("qa: error: Cannot write the index") and err.count("\n") == 1
    assert store.live_generation(built_index) == live
    assert answers(built_index) == before
    assert leftovers(built_index) == []
    assert qa.build(corpus, built_index, HASH).added == 1  # fixed disk: the next build works


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_really_read_only_index_folder(built_index, corpus):
    before = answers(built_index)
    change_corpus(corpus)
    built_index.chmod(0o555)
    try:
        with pytest.raises(qa.IndexWriteError, match="Cannot write the index"):
            qa.build(corpus, built_index, HASH)
    finally:
        built_index.chmod(0o755)
    assert answers(built_index) == before


def test_index_path_that_is_a_file_is_one_clear_error(corpus, tmp_path, capsys):
    (tmp_path / "index").write_text("not a folder", encoding="utf-8")

    argv = ["build", "--corpus", str(corpus), "--index", str(tmp_path / "index"), "--model", "hash"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and err.count("\n") == 1
    assert (tmp_path / "index").read_text(encoding="utf-8") == "not a folder"
