"""Ask questions over a folder of Chinese articles; every answer cites its source sentences.

    import qa
    qa.build("corpus", "index")
    bot = qa.load("index")
    bot.ask("赣服通集成了多少项服务?").text

Importing this package loads no model and touches no network.
"""

from .assistant import Assistant, load
from .build import build
from .config import Settings
from .errors import (
    BuildLockedError,
    EmptyCorpusError,
    EmptyQuestionError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexWriteError,
    ModelNotFoundError,
    QAError,
)
from .generate.llm import ChatModel, OpenAIChat
from .types import Answer, Article, BuildStats, Citation, Final, IndexInfo, Partial, Passage

__all__ = [
    "Answer",
    "Article",
    "Assistant",
    "BuildLockedError",
    "BuildStats",
    "ChatModel",
    "Citation",
    "EmptyCorpusError",
    "EmptyQuestionError",
    "Final",
    "IndexCorruptError",
    "IndexInfo",
    "IndexMismatchError",
    "IndexNotFoundError",
    "IndexWriteError",
    "ModelNotFoundError",
    "OpenAIChat",
    "Partial",
    "Passage",
    "QAError",
    "Settings",
    "build",
    "load",
]
