"""Walking the corpus folder: which files are articles (supported, not hidden, regular,
named in UTF-8), each real folder visited once, index folders and symlink loops left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from .clean import SURROGATE
from .file import SUPPORTED_SUFFIXES, relative


def corpus_files(root: Path, skipped: list[str]) -> list[Path]:
    """Supported, non-hidden files under `root`, sorted by their path relative to it.

    A file whose name is not UTF-8 (what unzipping a Chinese zip made on Windows gives)
    is left out with a message: its name cannot be an article id.
    """
    files = []
    for folder, names in _walk(root, skipped):
        for name in names:
            if name.startswith(".") or Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            path = Path(folder, name)
            if SURROGATE.search(name):
                skipped.append(_not_utf8(relative(path, root)))
                continue
            files.append(path)
    # Only regular files (or links to them): reading a FIFO or device would block or never end.
    files = [path for path in files if path.is_file() or not path.exists()]
    return sorted(files, key=lambda p: relative(p, root))


def _not_utf8(rel: str) -> str:
    """The skip message for a path whose name is not UTF-8, with a guess at what it says."""
    raw = os.fsencode(rel)
    shown = raw.decode("utf-8", "backslashreplace")
    guess = ""
    for codec in ("gb18030", "big5"):
        try:
            guess = f" (in {codec.upper()} it reads {raw.decode(codec)!r})"
            break
        except UnicodeDecodeError:
            continue
    return (
        f"{shown}: the file name is not UTF-8{guess}; rename it "
        "(e.g. unzip -O gbk, or convmv -f gbk -t utf-8)"
    )


def _walk(root: Path, skipped: list[str]) -> Iterator[tuple[str, list[str]]]:
    """Yield (folder, file names), visiting each real folder once.

    Symlinked folders that point inside the corpus are not followed (their files are read
    under their real path anyway) and a real folder reached twice is pruned, so symlink
    loops cannot hang the walk; symlinks to folders outside the corpus are followed.
    """
    root_real = os.path.realpath(root)
    visited = {root_real}
    if is_index_folder(root):
        skipped.append(f"{root}: an index folder (written by qa build), not articles")
        return

    def report(error: OSError) -> None:
        rel = relative(Path(error.filename or root), root)
        skipped.append(f"{SURROGATE.sub('?', rel)}: cannot list folder ({error.strerror or error})")

    for folder, dirnames, filenames in os.walk(root, followlinks=True, onerror=report):
        kept = []
        for name in sorted(dirnames):
            full = os.path.join(folder, name)
            real = os.path.realpath(full)
            inside = real == root_real or real.startswith(root_real + os.sep)
            if name.startswith(".") or real in visited or (os.path.islink(full) and inside):
                continue
            if SURROGATE.search(name):
                skipped.append(_not_utf8(relative(Path(full), root)) + "; its folder is not read")
                continue
            if is_index_folder(full):
                rel = relative(Path(full), root)
                skipped.append(f"{rel}: an index folder (written by qa build), not articles")
                continue
            visited.add(real)
            kept.append(name)
        dirnames[:] = kept  # os.walk only descends into what is left here
        yield folder, filenames


def is_index_folder(path: str | Path) -> bool:
    """Does `path` hold a folder index (qa/stores/folder/: manifest.json + data-*)? Its files
    are not articles, even when the index was built inside the corpus folder."""
    try:
        return os.path.isfile(os.path.join(path, "manifest.json")) and any(
            name.startswith("data-") for name in os.listdir(path)
        )
    except OSError:
        return False
