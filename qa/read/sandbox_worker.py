"""What runs inside the reading process (qa/read/sandbox.py): one request on stdin, the
document or the reason it was refused on stdout.

The process loads qa/read/ as a package of its own (sandbox.py `_WORKER_MAIN`), not the
qa package: this module imports only modules of qa/read/ that do the same.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from . import limits
from .document import DocumentError, TooSlow, to_json
from .docx import parse_docx
from .pdf import parse_pdf


def main() -> None:
    """The reading process: one JSON request on stdin, JSON lines (progress, then the
    document or the error) on stdout."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the answer

    def send(message: dict) -> None:
        out.write(json.dumps(message, ensure_ascii=False) + "\n")
        out.flush()

    request = json.loads(sys.stdin.readline())
    # The caller's limits (tests change them), for the readers of this process to use.
    limits.MAX_PAGES = request["max_pages"]
    limits.MAX_UNPACKED_BYTES = request["max_unpacked"]
    limits.MAX_READ_SECONDS = request["max_seconds"]
    limits.PROGRESS_PAGES = request["progress_pages"]
    limits.MAX_READ_MEMORY = limit = request["max_memory"]
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # no such limit here (Windows): the time limit still holds
    if request["kind"] == "pdf":
        import pdfminer.pdfinterp  # noqa: F401 - loaded before the time limit starts
    else:
        import docx  # noqa: F401
    send({"started": True})
    progress = None
    if request["progress"]:
        progress = lambda what, done, total: send({"progress": [what, done, total]})  # noqa: E731
    path = Path(request["path"])
    try:
        if request["kind"] == "pdf":
            doc = parse_pdf(path, progress, request["name"])
        else:
            doc = parse_docx(path)
    except MemoryError:
        send({"error": _too_big(), "not_remembered": True})
    except DocumentError as exc:
        send({"error": str(exc), "slow": isinstance(exc, TooSlow)})
    except RecursionError:
        send({"error": "damaged (nested too deeply)"})
    except OSError as exc:  # gone or unreadable since the build listed it
        send({"error": f"cannot read ({exc.strerror or exc})", "not_remembered": True})
    except Exception as exc:  # noqa: BLE001 - one line for the build, whatever it was
        reason = " ".join(str(exc).split())[:100] or type(exc).__name__
        send({"error": f"cannot be read ({reason})", "not_remembered": True})
    else:
        send({"document": to_json(doc)})
    out.close()


def _too_big() -> str:
    return (
        f"needs more than {limits.MAX_READ_MEMORY // 1024 // 1024} MB of memory to read "
        "(compressed parts that inflate far beyond their size?); save or print it to a new file"
    )
