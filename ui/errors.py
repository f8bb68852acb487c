"""What the page says when something fails: one line, never a traceback, never a secret."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from qa import QAError
from qa.stores import redact


def failed(what: str, exc: Exception) -> str:
    """One line for the page: what failed and why. An error that is not a QAError is a bug:
    its traceback goes to the server's log, its one-line reason to the page."""
    if isinstance(exc, QAError):
        return f"{what}:{exc}"
    traceback.print_exception(exc, file=sys.stderr)
    return f"{what}:{_one_line(exc)}(程序错误,详情见服务器日志)"


def _one_line(exc: BaseException) -> str:
    """An unexpected exception as one short line, without any Milvus credentials."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return redact_secrets(redact(text))[:300]


def redact_secrets(text: str) -> str:
    """`text` without QA_AUTH's, QA_MILVUS_TOKEN's or QA_LLM_KEY's secret in it."""
    for name in ("QA_MILVUS_TOKEN", "QA_AUTH", "QA_LLM_KEY"):
        value = os.environ.get(name, "").strip()  # as used (qa/generate/llm.py: model_key)
        for secret in {value, *value.split(":")[1:]} - {""}:
            text = text.replace(secret, "***")
    return text


def first_line(path: str | Path, what: str, holds: str) -> str:
    """The first line of a secret's file (a login, a key), stripped; QAError saying what the
    file must hold when it cannot be read."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QAError(
            f"Cannot read the {what} file {path} ({getattr(exc, 'strerror', exc)}): "
            f"it must hold one line, {holds}."
        ) from None
    return lines[0].strip() if lines else ""
