"""What counts in a reply sentence: its clauses, the words that carry meaning, the names."""

from __future__ import annotations

import re
from functools import lru_cache

from ..index.tokenize import QUESTION_WORDS, STOPWORDS, Tokenizer

# Words that talk about the sources rather than say something (根据原文, 文中提到 ...): not
# counted among the content words (docs/how-it-works.md, "Generated answers": 0.33 -> 0.97 of
# sentences with such a lead-in pass).
SOURCE_TALK = frozenset(
    "根据 依据 原文 资料 文中 文章 来源 材料 提到 提及 指出 表示 显示 说明 所述 可知 记载 "
    "介绍 答案 回答 总之 总的来说 因此 另外 此外 其中 据此 以上 如下 上述".split()
)
NAME_FLAGS = ("nr", "ns", "nt", "nz")  # jieba tags of person, place, organisation, other names
# A clause of the reply; a comma or colon between digits (1,000, 12:30) does not end it.
CLAUSE = re.compile(r"(?:[^，,；;：:]|(?<=[0-9])[,:](?=[0-9]))+")
CLAUSE_END = re.compile(r"[，,；;：:、。！？!?\n]")  # what separates a number from a word
LATIN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
QUOTED = re.compile(r"[「『“《]([^」』”》]{1,30})[」』”》]")


@lru_cache(maxsize=8192)  # each source sentence is tagged once, not once per reply sentence
def names_of(text: str, tokenizer: Tokenizer) -> frozenset[str]:
    """Words jieba tags as names, quoted terms and Latin words of `text`."""
    names = {w for w, flag in tokenizer.tagged(text) if flag.startswith(NAME_FLAGS) and len(w) > 1}
    names |= set(QUOTED.findall(text)) | {w for w in LATIN.findall(text) if len(w) > 1}
    return frozenset(names)


def content_words(text: str, tokenizer: Tokenizer) -> list[str]:
    """Words that carry meaning: no stopwords, question words, single characters or digits."""
    return [
        w
        for w in tokenizer.words(text)
        if len(w) > 1
        and w not in STOPWORDS
        and w not in QUESTION_WORDS
        and w not in SOURCE_TALK
        and not w.isnumeric()  # 900, 九百万: checked as numbers
    ]
