"""Every limit the reader keeps, in one place: what a file, a PDF page count, a reading
process or a title may reach before it is refused or cut.

Read them as `limits.NAME` when the code runs (not `from .limits import NAME`): tests lower
them, and the reading process (qa/read/sandbox.py) is sent the values the caller has.
"""

from __future__ import annotations

# A corpus file larger than this is not opened (the upload limit is far lower).
MAX_DOCUMENT_BYTES = 200 * 1024 * 1024
MAX_PAGES = 2000  # a longer PDF is a book or a scan batch: split it
# The parts of a .docx unpacked: a few MB of XML for a long report; a zip bomb is far more.
MAX_UNPACKED_BYTES = 300 * 1024 * 1024
MAX_READ_SECONDS = 300.0  # a PDF or .docx still being read after this is refused
# A PDF or .docx is read in a process of its own with at most this much address space: one
# page can inflate a few MB of compressed stream to GBs (tests/read/test_documents.py).
MAX_READ_MEMORY = 2 * 1024 * 1024 * 1024
PROGRESS_PAGES = 10  # documents with more pages report progress page by page

# Longer JSON ids are refused: an id is shown with every citation and stored as a key.
MAX_ID_CHARS = 1000
# Longer titles and metadata values are cut (ending in "…"): they are shown with every
# citation, and a Milvus index stores them in one field of at most 64 KB.
MAX_TITLE_CHARS = 200
MAX_METADATA_CHARS = 1000
