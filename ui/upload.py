"""Saving uploaded articles into the corpus folder: safe names, no overwrites, readable text."""

from __future__ import annotations

import os
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qa import QAError
from qa.read import DOCUMENT_SUFFIXES, SUPPORTED_SUFFIXES, read_file

UPLOAD_SUFFIXES = SUPPORTED_SUFFIXES  # every file the reader reads can be uploaded
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # far above any article; stops a stray archive or video
MAX_NAME_BYTES = 255  # what ext4 and most file systems allow for one name
# Articles in one uploaded file: a news feed has hundreds; 50,000 tiny records in a 1.3 MB
# JSONL file would hold the one build queue for minutes.
MAX_UPLOAD_ARTICLES = 10_000
# Files in one upload: more are refused by name (upload them next). Each is read in turn.
MAX_UPLOAD_FILES = 20
# Reading all the files of one upload: no longer than one PDF may take in a build, however
# many files it holds (three 3 KB PDFs of 1M operators each took 9.5 s, 20 of them could take
# 100 minutes). Files not read by then are refused and can be uploaded again on their own.
UPLOAD_READ_SECONDS = 300.0
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


@dataclass(frozen=True)
class Kept:
    """An uploaded file copied into the corpus under a hidden name (the corpus reader skips
    it) until it is read and given `target`'s name."""

    draft: Path
    target: Path


@dataclass(frozen=True)
class Received:
    """An upload taken in: the files kept to be read, one message per file refused."""

    kept: tuple[Kept, ...]
    rejected: tuple[str, ...]


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
    """Copy one uploaded file into `corpus` under a safe name, never replacing a file;
    raises UploadRejected if it may not be saved or cannot be read as an article."""
    result = save_uploads([(source, name)], corpus)
    if result.rejected:
        raise UploadRejected(result.rejected[0])
    return result.saved[0]


def save_uploads(files: Iterable[tuple[Path, str]], corpus: Path) -> UploadResult:
    """Save each (temporary path, original name) into `corpus`; collect what was refused."""
    received = receive_uploads(files, corpus)
    result = save_received(received)
    return UploadResult(result.saved, received.rejected + result.rejected)


def receive_uploads(files: Iterable[tuple[Path, str]], corpus: Path) -> Received:
    """Check each (temporary path, original name)'s name, type and size and copy it into
    `corpus` under a hidden name: quick, whatever the files hold. Only the first
    MAX_UPLOAD_FILES are taken; the rest are refused in one message."""
    corpus.mkdir(parents=True, exist_ok=True)
    files = list(files)
    kept, rejected = [], []
    for source, name in files[:MAX_UPLOAD_FILES]:
        try:
            kept.append(_keep(Path(source), name, corpus))
        except UploadRejected as exc:
            rejected.append(str(exc))
    if rest := [name for _, name in files[MAX_UPLOAD_FILES:]]:
        named = "、".join(f"「{shown(name)}」" for name in rest[:3])
        rejected.append(
            f"{named}{'等' if len(rest) > 3 else ''} {len(rest)} 个文件:一次最多上传 "
            f"{MAX_UPLOAD_FILES} 个文件,这些没有添加,请再上传一次。"
        )
    return Received(tuple(kept), tuple(rejected))


def _keep(source: Path, name: str, corpus: Path) -> Kept:
    target = check_upload(source, name, corpus)
    draft = corpus / f".upload-{uuid.uuid4().hex}{target.suffix}"
    try:
        shutil.copyfile(source, draft)
    except OSError as exc:
        draft.unlink(missing_ok=True)
        raise UploadRejected(_not_saved(target.name, exc)) from None
    return Kept(draft, target)


def save_received(received: Received) -> UploadResult:
    """Read each kept file and give it its name in the corpus, never replacing a file; a file
    that cannot be read as an article never joins the corpus.

    All the files of one upload are read within UPLOAD_READ_SECONDS, text files first (they
    are quick): a file still not read by then is refused, and so are the files after it.
    """
    deadline = time.monotonic() + UPLOAD_READ_SECONDS
    saved, rejected = [], []
    for item in sorted(received.kept, key=lambda k: k.target.suffix.lower() in DOCUMENT_SUFFIXES):
        try:
            saved.append(_save(item, deadline))
        except UploadRejected as exc:
            rejected.append(str(exc))
        finally:
            item.draft.unlink(missing_ok=True)
    return UploadResult(tuple(saved), tuple(rejected))


def discard(received: Received) -> None:
    """Remove the kept files of an upload that will not be read."""
    for item in received.kept:
        item.draft.unlink(missing_ok=True)


def _save(item: Kept, deadline: float) -> Path:
    target = item.target
    try:
        _check_readable(item.draft, target.parent, target.name, deadline)
        try:
            os.link(item.draft, target)  # fails if the name was taken meanwhile: no overwrite
        except FileExistsError:
            raise UploadRejected(_exists(target.name)) from None
        except OSError:  # a file system without hard links
            with open(item.draft, "rb") as src, open(target, "xb") as dst:
                shutil.copyfileobj(src, dst)
    except FileExistsError:
        raise UploadRejected(_exists(target.name)) from None
    except OSError as exc:
        raise UploadRejected(_not_saved(target.name, exc)) from None
    return target


def _check_readable(path: Path, corpus: Path, name: str, deadline: float) -> None:
    if time.monotonic() >= deadline:
        raise UploadRejected(_out_of_time(name))
    try:
        articles = read_file(path, corpus, seconds=deadline - time.monotonic())
    except (QAError, ValueError) as exc:
        if time.monotonic() >= deadline:
            raise UploadRejected(_out_of_time(name)) from None
        reason = str(exc).replace(path.name, shown(name))
        raise UploadRejected(f"「{shown(name)}」:无法读取({reason})。") from None
    if not any(a.paragraphs for a in articles):
        raise UploadRejected(f"「{shown(name)}」:文件里没有可读的正文。")
    if len(articles) > MAX_UPLOAD_ARTICLES:
        raise UploadRejected(
            f"「{shown(name)}」:文件里有 {len(articles)} 篇文章,超过每个文件 "
            f"{MAX_UPLOAD_ARTICLES} 篇的上限,请拆分后再上传。"
        )


def _out_of_time(name: str) -> str:
    return (
        f"「{shown(name)}」:这次上传读取文件已用完 {UPLOAD_READ_SECONDS:.0f} 秒,它没有添加;"
        "请单独再上传它,太慢的 PDF 请拆分或另存为新的 PDF。"
    )


def _not_saved(name: str, exc: OSError) -> str:
    return f"「{shown(name)}」:保存失败({exc.strerror or exc})。"


def _exists(name: str) -> str:
    return f"「{shown(name)}」:文章库里已有同名文件,没有覆盖。请改名后再上传。"


def stage(what: str, embedding: str) -> dict[str, str]:
    """The progress bar's label and unit for a build stage: reading a long PDF page by page
    ("reading report.pdf"), else `embedding` (passages)."""
    if what.startswith("reading "):
        return {"desc": f"正在读取 {shown(what.removeprefix('reading '))}", "unit": "页"}
    return {"desc": embedding, "unit": "段"}
