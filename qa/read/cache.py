"""The cache of read documents under QA_CACHE/documents: a PDF or .docx is parsed once
until its bytes change (`read_document`).

Entries hold the text of private documents and could put any text in the index, so they
are read and written relative to an open folder of this user only, never through a link.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import stat
from pathlib import Path

from . import docx, pdf
from .document import (
    Document,
    DocumentError,
    NotRemembered,
    Progress,
    check_size,
    from_json,
    to_json,
)

# Change it whenever reading a PDF or .docx gives other paragraphs: older entries go unused.
READER_VERSION = "4"

_READ_ENTRY = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_NEW_ENTRY = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def read_document(
    path: Path, progress: Progress | None = None, name: str = "", seconds: float | None = None
) -> Document:
    """`read_pdf` or `read_docx` by suffix, remembered by the file's content.

    A build reads again every file whose size or times changed since the last build of its
    index (and all of them for another corpus folder, reading code, splitting or model),
    and pdfminer.six takes 50-100 ms a page: a folder of reports would be parsed again on
    each upload. What a file gave (or why it was refused) is kept under QA_CACHE/documents,
    keyed by its bytes, its suffix, the reader's version and the libraries' versions, so a
    changed file is read again and an unchanged one is not.
    `seconds`: read for at most this long (at most MAX_READ_SECONDS, qa/read/limits.py).
    """
    is_pdf = path.suffix.lower() == ".pdf"
    data = check_size(path)
    if not data:
        raise DocumentError("empty file (0 bytes)")
    # Keyed by the reader too: the same bytes named .pdf and .docx are read differently.
    digest = hashlib.blake2b(data, digest_size=16, key=_versions().encode()[:64])
    digest.update(b".pdf" if is_pdf else b".docx")
    entry = f"{digest.hexdigest()}.json"
    # A key follows from public data (a published report and the libraries' versions): an
    # entry is used only for the file whose bytes it names, never for its name alone.
    source = hashlib.sha256(data).hexdigest()
    folder = _open_cache()
    try:
        kept = _recall(folder, entry, source)
        if isinstance(kept, DocumentError):
            raise kept
        if kept is not None:
            return kept
        # No entry, or a damaged one, one of another layout or another file: read the file.
        try:
            if is_pdf:
                doc = pdf.read_pdf(path, progress, name, seconds)
            else:
                doc = docx.read_docx(path, seconds)
        except NotRemembered:
            raise
        except DocumentError as exc:
            _remember(folder, entry, {"sha256": source, "error": str(exc)})
            raise
        _remember(folder, entry, {"sha256": source, **to_json(doc)})
        return doc
    finally:
        if folder is not None:
            os.close(folder)


def _cache_folder() -> Path:
    from ..config import cache_root

    return cache_root() / "documents"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = [READER_VERSION]
    for package in ("pdfminer.six", "python-docx"):
        try:
            found.append(version(package))
        except PackageNotFoundError:
            found.append("-")
    return " ".join(found)


def _open_cache() -> int | None:
    """The cache folder, open (entries are read and written relative to it, so no link in
    its path can lead them elsewhere); None when there is none to use: documents are then
    read each time, only slower.

    Entries hold the text of private documents, and one that someone else wrote could put
    any text in the index: only a real folder (not a link) of this user is used, made
    private (0700) if it was not; a group or others keep no access to it.
    """
    if os.open not in os.supports_dir_fd:  # Windows: no way to open an entry safely
        return None
    path = _cache_folder()
    log = logging.getLogger("qa")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:  # a read-only home, a file or a link in its place
        log.debug("documents not cached: %s", exc)
        return None
    try:
        info = os.fstat(folder)
        if info.st_uid != os.geteuid():
            raise PermissionError(f"{path} belongs to another user")
        if info.st_mode & 0o077:  # made by an earlier version, or by hand: made private
            os.fchmod(folder, stat.S_IMODE(info.st_mode) & 0o700)
    except OSError as exc:
        log.debug("documents not cached: %s", exc)
        os.close(folder)
        return None
    return folder


def _recall(folder: int | None, entry: str, source: str) -> Document | DocumentError | None:
    """What the cache says of the file whose bytes have the SHA-256 `source`: its Document,
    or the error that refused it. None for anything else (read the file again): no entry, a
    damaged one, one of another file, or one that is not a regular file of this user (a
    FIFO would block the build, a link could lead anywhere)."""
    if folder is None:
        return None
    try:
        fd = os.open(entry, _READ_ENTRY, dir_fd=folder)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                return None
            kept = json.loads(file.read().decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # unreadable, truncated, not UTF-8
        return None
    if not isinstance(kept, dict) or kept.pop("sha256", None) != source:
        return None
    if set(kept) == {"error"} and isinstance(kept["error"], str):
        return DocumentError(kept["error"])
    return from_json(kept)


def _remember(folder: int | None, entry: str, value: dict) -> None:
    if folder is None:
        return
    # A new file that only this user can read, under a name no one can guess (a name known
    # in advance could be a link someone put there); two builds at once each write their own.
    tmp = f"{entry}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, _NEW_ENTRY, 0o600, dir_fd=folder)
        with os.fdopen(fd, "wb") as file:
            file.write(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        os.replace(tmp, entry, src_dir_fd=folder, dst_dir_fd=folder)
    except OSError as exc:  # a full disk: documents are read each time, only slower
        logging.getLogger("qa").debug("document not cached: %s", exc)
        try:
            os.unlink(tmp, dir_fd=folder)
        except OSError:
            pass
