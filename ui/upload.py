"""Saving uploaded articles into the corpus folder: safe names, no overwrites, readable text."""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qa import QAError
from qa.read.corpus import read_file

UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".htm", ".json", ".jsonl", ".pdf", ".docx")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # far above any article; stops a stray archive or video
MAX_NAME_BYTES = 255  # what ext4 and most file systems allow for one name
# Articles in one uploaded file: a news feed has hundreds; 50,000 tiny records in a 1.3 MB
# JSONL file would hold the one build queue for minutes.
MAX_UPLOAD_ARTICLES = 10_000
SHOWN_NAME_CHARS = 60  # a name in a message is cut to this

# Characters no file name should carry: separators, Windows-reserved ones, controls, and
# lone surrogates (a name that was not UTF-8).
_BAD_CHARS = re.compile('[\x00-\x1f\x7f<>:"|?*\ud800-\udfff]')


class UploadRejected(ValueError):
    """An uploaded file was not saved; the message says why, in the UI's language."""


@dataclass(frozen=True)
class UploadResult:
    """What happened to a batch of uploads."""

    saved: tuple[Path, ...]
    rejected: tuple[str, ...]  # one message per file that was not saved


def safe_name(name: str) -> str:
    """A file name that stays inside the corpus folder: the last path component, cleaned.

    "../x.txt" becomes "x.txt"; ".hidden.md" becomes "hidden.md"; a name over 255 bytes of
    UTF-8 (counted after NFC normalisation, which can triple a name) is cut to fit, its
    extension kept. Raises UploadRejected when nothing usable is left.
    """
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", _BAD_CHARS.sub("_", name)))[-1]
    base = _BAD_CHARS.sub("_", base).strip().lstrip(".").strip()
    stem, suffix = os.path.splitext(base)
    if not stem.strip(" ._"):
        raise UploadRejected(f"「{shown(name)}」:文件名无效,请改一个有字母或汉字的文件名。")
    if len(suffix.encode()) > MAX_NAME_BYTES // 2:  # no real extension is that long
        stem, suffix = base, ""
    stem = _cut_utf8(stem, MAX_NAME_BYTES - len(suffix.encode())).rstrip(" .")
    if not stem.strip(" ._"):
        raise UploadRejected(f"「{shown(name)}」:文件名无效,请改一个有字母或汉字的文件名。")
    return stem + suffix


def _cut_utf8(text: str, limit: int) -> str:
    """The longest start of `text` whose UTF-8 takes at most `limit` bytes."""
    return text.encode()[:limit].decode("utf-8", "ignore")


def shown(name: str) -> str:
    """A file name as messages show it: at most SHOWN_NAME_CHARS characters."""
    name = _BAD_CHARS.sub("_", name)
    if len(name) <= SHOWN_NAME_CHARS:
        return name
    return name[: SHOWN_NAME_CHARS - 1] + "…"


def check_upload(source: Path, name: str, corpus: Path) -> Path:
    """Where `source` would be saved in `corpus` as `name`; raises UploadRejected if it may not."""
    clean = safe_name(name)
    suffix = Path(clean).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise UploadRejected(
            f"「{shown(clean)}」:不支持 {shown(suffix) or '无扩展名'} 文件,只能上传 "
            f"{' '.join(UPLOAD_SUFFIXES)} 文件。"
        )
    size = source.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise UploadRejected(
            f"「{shown(clean)}」:文件有 {size / 1024 / 1024:.1f} MB,超过上限 "
            f"{MAX_UPLOAD_BYTES // 1024 // 1024} MB,请拆分后再上传。"
        )
    target = corpus / clean
    if target.resolve().parent != corpus.resolve():
        raise UploadRejected(f"「{shown(name)}」:文件名无效。")
    if target.exists():
        raise UploadRejected(_exists(clean))
    return target


def save_upload(source: Path, name: str, corpus: Path) -> Path:
    """Copy one uploaded file into `corpus` under a safe name, never replacing a file.

    The copy is read back under a hidden name first (the corpus reader skips hidden
    files), so a file that cannot be read as an article never joins the corpus.
    """
    target = check_upload(source, name, corpus)
    draft = corpus / f".upload-{uuid.uuid4().hex}{target.suffix}"
    try:
        shutil.copyfile(source, draft)
        _check_readable(draft, corpus, target.name)
        try:
            os.link(draft, target)  # fails if the name was taken meanwhile: no overwrite
        except FileExistsError:
            raise UploadRejected(_exists(target.name)) from None
        except OSError:  # a file system without hard links
            with open(draft, "rb") as src, open(target, "xb") as dst:
                shutil.copyfileobj(src, dst)
    except FileExistsError:
        raise UploadRejected(_exists(target.name)) from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise UploadRejected(f"「{shown(target.name)}」:保存失败({reason})。") from None
    finally:
        draft.unlink(missing_ok=True)
    return target


def _check_readable(path: Path, corpus: Path, name: str) -> None:
    try:
        articles = read_file(path, corpus)
    except (QAError, ValueError) as exc:
        reason = str(exc).replace(path.name, shown(name))
        raise UploadRejected(f"「{shown(name)}」:无法读取({reason})。") from None
    if not any(a.paragraphs for a in articles):
        raise UploadRejected(f"「{shown(name)}」:文件里没有可读的正文。")
    if len(articles) > MAX_UPLOAD_ARTICLES:
        raise UploadRejected(
            f"「{shown(name)}」:文件里有 {len(articles)} 篇文章,超过每个文件 "
            f"{MAX_UPLOAD_ARTICLES} 篇的上限,请拆分后再上传。"
        )


def _exists(name: str) -> str:
    return f"「{shown(name)}」:文章库里已有同名文件,没有覆盖。请改名后再上传。"


def save_uploads(files: Iterable[tuple[Path, str]], corpus: Path) -> UploadResult:
    """Save each (temporary path, original name) into `corpus`; collect what was refused."""
    corpus.mkdir(parents=True, exist_ok=True)
    saved, rejected = [], []
    for source, name in files:
        try:
            saved.append(save_upload(Path(source), name, corpus))
        except UploadRejected as exc:
            rejected.append(str(exc))
    return UploadResult(tuple(saved), tuple(rejected))


def stage(what: str, embedding: str) -> dict[str, str]:
    """The progress bar's label and unit for a build stage: reading a long PDF page by page
    ("reading report.pdf"), else `embedding` (passages)."""
    if what.startswith("reading "):
        return {"desc": f"正在读取 {shown(what.removeprefix('reading '))}", "unit": "页"}
    return {"desc": embedding, "unit": "段"}
