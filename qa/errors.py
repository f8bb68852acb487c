"""Exceptions raised by the public API. Each message says what is wrong and what to do."""


class QAError(Exception):
    """Base class: the CLI and UI print these as one line, without a traceback."""


class EmptyQuestionError(QAError, ValueError):
    """The question is empty or only whitespace/punctuation."""


class EmptyCorpusError(QAError):
    """The corpus folder holds no readable article."""


class IndexNotFoundError(QAError):
    """No index at the given folder (run `qa build`)."""


class IndexMismatchError(QAError):
    """The index was built by another model or format version (run `qa build` again)."""


class IndexCorruptError(QAError):
    """Index files are missing, truncated or inconsistent (run `qa build` to repair)."""


class BuildLockedError(QAError):
    """Another build is writing the same index."""


class IndexWriteError(QAError, OSError):
    """A build could not write the index (disk full, read-only folder); the old one is intact."""


class ModelNotFoundError(QAError, FileNotFoundError):
    """The embedding model (or what runs it) is not installed here; nothing is downloaded."""


def check_format(where: str, found: object, reads: object) -> None:
    """IndexMismatchError unless the index at `where` has a format this version reads
    (`reads`: one, or a tuple of them)."""
    accepted = reads if isinstance(reads, tuple) else (reads,)
    if not any(type(found) is type(r) and found == r for r in accepted):  # True is not 1
        shown = " or ".join(repr(r) for r in accepted)
        raise IndexMismatchError(
            f"The index at {where} has format {found!r}, this version reads format {shown}; "
            f"run `qa build --index {where}` to rebuild it."
        )
