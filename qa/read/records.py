"""JSON and JSONL files of records: a list of objects, {"articles": [...]}, one object, or
one object per line. A bad record is left out with a line saying why; the rest are read.
"""

from __future__ import annotations

import json

from ..types import Article
from . import limits
from .clean import clean, cut, one_line
from .parsed import BadInput, FileRead, Found
from .text import split_paragraphs

_METADATA_KEYS = ("date", "source", "url")


def parse_json(text: str, rel: str) -> FileRead:
    """A list of objects, {"articles": [...]}, or one object; items are numbered from 1."""
    try:
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise BadInput(f"not valid JSON (line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise BadInput(f"not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        data = data["articles"]
    if isinstance(data, dict):
        data = [data]  # a single article
    if not isinstance(data, list):
        raise BadInput("not a JSON object or list of objects")
    found, skipped = [], []
    for number, obj in enumerate(data, 1):
        where = f"{rel} item {number}"
        try:
            found.append(Found(_record_article(obj, rel, number), where, record=True))
        except BadInput as exc:
            skipped.append(f"{where}: {exc}")
    return _file_read(found, skipped)


def parse_jsonl(text: str, rel: str) -> FileRead:
    """One object per line; blank lines are ignored, line numbers count from 1."""
    found, skipped = [], []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{rel} line {number}"
        try:
            found.append(Found(_record_article(_json_line(line), rel, number), where, record=True))
        except BadInput as exc:
            skipped.append(f"{where}: {exc}")
    return _file_read(found, skipped)


def _json_line(line: str) -> object:
    try:
        return json.loads(line, strict=False)
    except json.JSONDecodeError:
        raise BadInput("not valid JSON") from None
    except RecursionError:
        raise BadInput("not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise BadInput(f"not valid JSON ({exc})") from None


def _file_read(found: list[Found], skipped: list[str]) -> FileRead:
    if not found and not skipped:
        raise BadInput("no articles in it")
    return FileRead(tuple(found), tuple(skipped))


def _record_article(obj: object, rel: str, number: int) -> Article:
    if not isinstance(obj, dict):
        raise BadInput("not a JSON object")
    art_id = _record_id(obj.get("id"), f"{rel}#{number}")
    title = obj.get("title")
    title = cut(one_line(str(title)), limits.MAX_TITLE_CHARS) if title is not None else ""
    metadata = tuple(
        (key, cut(one_line(str(obj[key])), limits.MAX_METADATA_CHARS))
        for key in _METADATA_KEYS
        if obj.get(key) not in (None, "")
    )
    return Article(art_id, title or art_id, _record_paragraphs(obj), rel, metadata)


def _record_id(value: object, fallback: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return fallback
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadInput("'id' must be a string or a number")
    art_id = one_line(str(value))
    if not art_id:
        return fallback
    if len(art_id) > limits.MAX_ID_CHARS:
        raise BadInput(f"'id' is longer than {limits.MAX_ID_CHARS} characters")
    return art_id


def _record_paragraphs(obj: dict) -> tuple[str, ...]:
    """`paragraphs` (list order kept, empty strings dropped) or else `text` split like a .txt.

    Dropping empty strings shifts later paragraph numbers: paragraph i of the article is the
    i-th non-empty string of the list, not item i.
    """
    listed = obj.get("paragraphs")
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            raise BadInput("'paragraphs' must be a list of strings")
        paragraphs = tuple(p for p in (clean(p).strip() for p in listed) if p)
    else:
        text = obj.get("text")
        if text is not None and not isinstance(text, str):
            raise BadInput("'text' must be a string")
        paragraphs = split_paragraphs(clean(text or "").split("\n"))
    if not paragraphs:
        raise BadInput("no text (needs a non-empty 'text' string or 'paragraphs' list)")
    return paragraphs
