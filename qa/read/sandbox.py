"""The reading process: a PDF or .docx is parsed in a process of its own, killed when it
takes longer than its time limit, with a limit on its memory (qa/read/limits.py).

What runs inside it is qa/read/sandbox_worker.py, loaded from qa/read/ alone (not the qa
package, whose imports take most of a second): it and every module it imports may import
only modules of qa/read/ that do the same (tests/project/test_layout.py checks).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import limits
from .document import Document, DocumentError, NotRemembered, Progress, TooSlow, from_json

_WORKER_START_SECONDS = 60.0  # for the reading process to start (on a busy machine)


def read_in_sandbox(
    kind: str, path: Path, progress: Progress | None, name: str, seconds: float | None = None
) -> Document:
    """`parse_pdf` or `parse_docx` of `path` in a process of its own, killed when it takes
    longer than `seconds` (at most MAX_READ_SECONDS); it gets MAX_READ_MEMORY
    of address space.

    pdfminer.six reads a page whole, and the time limit is checked between pages: one page
    of a few MB that inflates to GBs took 4 GB of memory per 2 GB, one of millions of
    operators minutes. Neither can be interrupted inside the parser, so the parser runs in
    a process that the limits end. The limits are sent along (tests change them).
    """
    limit = limits.MAX_READ_SECONDS if seconds is None else min(seconds, limits.MAX_READ_SECONDS)
    request = {
        "kind": kind,
        "path": str(path),
        "name": name,
        "progress": progress is not None,
        "max_pages": limits.MAX_PAGES,
        "max_unpacked": limits.MAX_UNPACKED_BYTES,
        "max_seconds": limit,
        "max_memory": limits.MAX_READ_MEMORY,
        "progress_pages": limits.PROGRESS_PAGES,
    }
    # This folder alone, not the qa package (whose imports take most of a second).
    process = subprocess.Popen(
        [sys.executable, "-c", _WORKER_MAIN, str(Path(__file__).resolve().parent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        with process.stdout:  # closed here, never under the loop reading it
            for line in process.stdout:
                lines.put(line)
        lines.put(None)

    try:
        process.stdin.write(json.dumps(request).encode() + b"\n")
        process.stdin.close()
        threading.Thread(target=pump, daemon=True).start()
        # The limit counts from when the reader has started (Python and the libraries
        # loaded): a busy machine may take seconds for that.
        deadline = time.monotonic() + _WORKER_START_SECONDS
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise TooSlow(
                    f"still not read after {limit:.0f} s: split it or print it to a new PDF"
                ) from None
            if line is None:
                code = process.wait()
                raise NotRemembered(
                    f"its reader stopped (exit status {code}): it may need more than "
                    f"{limits.MAX_READ_MEMORY // 1024 // 1024} MB of memory; export it again"
                )
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours: something the libraries printed
            if not isinstance(message, dict):
                continue
            if "started" in message:
                deadline = time.monotonic() + max(limit, 0.0) + 1.0
            elif "progress" in message and progress is not None:
                progress(*message["progress"])
            elif "error" in message:
                error = NotRemembered if message.get("not_remembered") else DocumentError
                if message.get("slow"):
                    error = TooSlow
                raise error(message["error"])
            elif "document" in message:
                doc = from_json(message["document"])
                if doc is None:
                    raise NotRemembered("its reader gave no usable result")
                return doc
    except OSError as exc:  # cannot start a process (none left, no executable)
        raise NotRemembered(f"cannot start its reader ({exc.strerror or exc})") from None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


# qa/read/ (sys.argv[1]) loaded as a package of its own, "_qa_read", without running its
# __init__.py: the reading modules import each other, and nothing outside qa/read/.
_WORKER_MAIN = """
import importlib, sys, types
package = sys.modules["_qa_read"] = types.ModuleType("_qa_read")
package.__path__ = [sys.argv[1]]
importlib.import_module("_qa_read.sandbox_worker").main()
"""
