"""Word .docx (python-docx): the title, then paragraphs and tables in order, one table row
per line. Headers, footers, comments and notes are not body text.

`read_docx` parses in the reading process (qa/read/sandbox.py), which runs `parse_docx`.
python-docx is imported inside the function that uses it: `import qa` stays cheap.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from . import limits
from .document import ROW_SEPARATOR, Document, DocumentError, check_size, refuse_large
from .sandbox import read_in_sandbox


def read_docx(path: Path, seconds: float | None = None) -> Document:
    """Title (the title property, else the first heading), paragraphs and tables in order,
    one table row per line, read in a process of its own. Headers, footers, comments and
    notes are not body text."""
    refuse_large(path)
    return read_in_sandbox("docx", path, None, path.name, seconds)


def parse_docx(path: Path) -> Document:
    """`read_docx` in this process: what the reading process runs (qa/read/sandbox_worker.py)."""
    check_size(path)
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            if "word/document.xml" not in archive.namelist():
                raise DocumentError("not a Word .docx file (no word/document.xml in it)")
    except zipfile.BadZipFile:
        raise DocumentError(
            "not a readable .docx (truncated or damaged zip); save or download it again"
        ) from None
    if unpacked > limits.MAX_UNPACKED_BYTES:
        raise DocumentError(
            f"unpacks to {unpacked / 1024 / 1024:.0f} MB, more than the "
            f"{limits.MAX_UNPACKED_BYTES // 1024 // 1024} MB read"
        )
    import docx

    try:
        document = docx.Document(str(path))
        title = (document.core_properties.title or "").strip()
        heading = ""
        paragraphs: list[str] = []
        for block in document.iter_inner_content():
            if hasattr(block, "rows"):
                text = _table_text(block)
            else:
                text = block.text.strip()
                style = (block.style.name if block.style is not None else "") or ""
                if text and not heading and style.lower().startswith(("heading", "title")):
                    heading = text
            if text:
                paragraphs.append(text)
    except (DocumentError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - python-docx fails in many ways on a damaged file
        reason = " ".join(str(exc).split())[:100] or type(exc).__name__
        raise DocumentError(f"damaged .docx ({reason}); save it again from Word") from None
    title = title or heading
    if paragraphs and paragraphs[0] == title:
        paragraphs = paragraphs[1:]  # the title is the article's title, not its first paragraph
    return Document(title, tuple(paragraphs))


def _table_text(table) -> str:
    """A table as one row per line, cells joined by ROW_SEPARATOR (a merged cell once)."""
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell appears once per grid column it spans
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(ROW_SEPARATOR.join(cells))
    return "\n".join(rows)
