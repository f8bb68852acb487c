"""The page's uploads: taken in at once, then read, saved and indexed in the background one
after another, each with a report its page follows."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import failed
from .live import Progress
from .upload import Received, discard, receive_uploads, stage

UPLOADS_WAITING = 4  # uploads taken in while another is read and indexed; more are refused
UPLOADS_KEPT = 100  # reports of recent uploads, for the pages that follow them


@dataclass(frozen=True)
class UploadReport:
    """What some uploads have come to (one paragraph each), and those still under way."""

    text: str
    pending: tuple[int, ...]  # upload numbers still being read or indexed


class _Upload:
    """An upload being read, saved and indexed in the background, and what its page shows.

    `report` and `done` are each replaced whole by the one thread that reads uploads.
    """

    def __init__(self, received: Received, report: str):
        self.received = received
        self.report = report
        self.done = not received.kept


class UploadQueue:
    """Uploads into `corpus`, read, saved and indexed by one thread of their own, in the order
    they came, so that no request waits for them (reading a PDF can take minutes).

    `add(received, progress)` saves and indexes one upload and returns its report.
    """

    def __init__(self, corpus: Path, add: Callable[[Received, Progress | None], str]):
        self.corpus = corpus
        self._add = add
        self._waiting: queue.Queue[_Upload] = queue.Queue(UPLOADS_WAITING)
        self._uploads: dict[int, _Upload] = {}  # by number, the last UPLOADS_KEPT
        self._numbers = itertools.count(1)
        self._reader: threading.Thread | None = None  # reads the uploads, one after another
        self._lock = threading.Lock()

    def receive(self, files: Sequence[tuple[Path, str]]) -> int:
        """Take an upload in at once (names, types and sizes checked, the files kept); they
        are read, saved and indexed in the background, one upload after another. Returns
        the upload's number for `report`."""
        try:
            received = receive_uploads(files, self.corpus)
        except Exception as exc:  # a bug, or a disk error the saving did not expect
            return self._keep(_Upload(Received((), ()), failed("保存文章失败", exc)))
        refused = [f"未添加 {line}" for line in received.rejected]
        if not received.kept:
            return self._keep(_Upload(received, "\n".join(refused) or "没有选择文件。"))
        names = ", ".join(k.target.name for k in received.kept)
        upload = _Upload(
            received,
            "\n".join([f"已收到:{names},正在读取并建立索引…(完成前仍用原来的索引回答)", *refused]),
        )
        try:
            self._waiting.put_nowait(upload)
        except queue.Full:
            discard(received)
            busy = f"还有 {UPLOADS_WAITING} 批上传在等待,这次的文件没有添加,请稍后再上传。"
            return self._keep(_Upload(Received((), ()), "\n".join([busy, *refused])))
        with self._lock:
            if self._reader is None:
                self._reader = threading.Thread(target=self._read, daemon=True)
                self._reader.start()
        return self._keep(upload)

    def report(self, numbers: Sequence[int]) -> UploadReport:
        """What the uploads `numbers` (from `receive`) have come to."""
        with self._lock:
            uploads = {n: self._uploads[n] for n in numbers if n in self._uploads}
        text = "\n\n".join(upload.report for upload in uploads.values())
        return UploadReport(text, tuple(n for n, upload in uploads.items() if not upload.done))

    def _keep(self, upload: _Upload) -> int:
        with self._lock:
            number = next(self._numbers)
            self._uploads[number] = upload
            for old in list(self._uploads)[:-UPLOADS_KEPT]:
                if self._uploads[old].done:
                    del self._uploads[old]
        return number

    def _read(self) -> None:
        """The thread that reads, saves and indexes the uploads, in the order they came."""
        while True:
            upload = self._waiting.get()
            try:
                upload.report = self._add(upload.received, _shown_on(upload))
            except Exception as exc:  # a bug: the next upload is still read
                discard(upload.received)
                upload.report = failed("添加文章失败", exc)
            upload.done = True


def _shown_on(upload: _Upload) -> Progress:
    """Progress written under what the upload's report said when its reading began."""
    taken = upload.report

    def progress(what: str, done: int, total: int) -> None:
        label = stage(what, "正在嵌入新文章的段落")
        upload.report = f"{taken}\n{label['desc']}:{done}/{total} {label['unit']}"

    return progress
