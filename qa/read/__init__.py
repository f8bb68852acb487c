"""Read a folder of articles (.txt, .md, .html, .json, .jsonl, .pdf, .docx) into `Article`s.

Paragraph strings are what answers cite by character offset, so text is kept exactly as
written apart from: newline normalisation, removal of control characters, stripping each
paragraph's surrounding whitespace, light markdown markup removal and HTML tag removal.

Everything here runs in time linear in the file's size (a regex that backtracks, or Python's
html.parser on malformed markup, would let one uploaded file stall a server for minutes):
tests/app/test_hostile.py times the known bad cases.

The modules, in the order a file goes through them:

    corpus.py          read_corpus: the folder into a Corpus, one id per article
    folder.py          walking the folder: which files, symlink loops, index folders
    file.py            one file: its suffix picks the reader (SUPPORTED_SUFFIXES)
    decode.py          a text file's bytes into text: byte-order marks, UTF-8, GB18030, Big5
    clean.py           the cleaning every text gets (newlines, control characters)
    text.py            .txt and .md: title and paragraphs
    records.py         .json and .jsonl records
    html.py            .html and .htm: trafilatura, or the built-in linear extractor
    cache.py           PDF and .docx read once until their bytes change (QA_CACHE/documents)
    pdf.py             PDF: lines of each page, characters as the text means them
    pdf_layout.py      a PDF's lines into paragraphs (columns, headers, tables)
    docx.py            Word .docx
    sandbox.py         the process a PDF or .docx is parsed in, with its time and memory limits
    sandbox_worker.py  what runs inside that process
    document.py        what a PDF, .docx or web page gives (Document), DocumentError
    parsed.py          what each parser gives back (FileRead, Found, BadInput)
    limits.py          every limit, in one place
"""

from __future__ import annotations

from .corpus import Corpus, read_corpus
from .document import Document, DocumentError
from .file import DOCUMENT_SUFFIXES, SUPPORTED_SUFFIXES, UnreadableFileError, read_file
from .folder import is_index_folder

__all__ = [
    "DOCUMENT_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "Corpus",
    "Document",
    "DocumentError",
    "UnreadableFileError",
    "is_index_folder",
    "read_corpus",
    "read_file",
]
