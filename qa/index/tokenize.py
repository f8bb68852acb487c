"""Chinese word tokens (jieba) for keyword search and sentence matching."""

from __future__ import annotations

import functools
import gc
import hashlib
import logging
import math
import os
import pickle
import re
import threading
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger("qa")

# Function words that carry no topic: matching them says nothing about relevance.
STOPWORDS = frozenset(
    "的 了 是 在 和 与 及 或 也 都 就 而 并 被 把 对 从 以 于 为 之 其 这 那 "
    "有 个 上 下 中 将 向 又 等 由 着 过 还 该 此 则 但 所 即 给 让 使 已 地 "
    "得 一个 这个 那个 一 不 没有 吗 呢 吧 啊".split()
)

# Words that say what kind of answer is wanted, not what it is about: they rarely
# appear in the answering sentence, so they must not count as matches.
QUESTION_WORDS = frozenset(
    "什么 哪 哪个 哪些 哪里 哪儿 哪年 哪一年 哪天 哪国 哪位 谁 多少 几 "
    "几个 几年 几次 几种 怎么 怎样 如何 为什么 为何 何 何时 何地 何种 多久 "
    "多长 多大 多远 多高 吗 呢 是否 请问 叫 称为 被称为 什么样 什么时候 "
    "是谁 指 属于 位于 包括".split()
)

_WORD = re.compile(r"\w")
_QUESTION = re.compile("|".join(sorted(QUESTION_WORDS, key=len, reverse=True)))
_RUN = re.compile(r"\w+")
# Character n-grams sit in the same keyword index as words, marked so that a one-character
# word and a character never count as the same term. The mark is a rare Han character
# (U+3400, CJK extension A) so that Milvus's tokenizers, which split where the script
# changes, keep it on its gram.
GRAM = "\u3400"


@functools.cache
def _dictionary():
    """jieba's default dictionary, read once per process and never changed after.

    A private jieba.Tokenizer, not jieba's module-level one, so nothing here depends on or
    alters what other code does with jieba. jieba keeps the dictionary's prefix table as a
    marshal file (/tmp/jieba.cache), ~1 s to read here; the same table pickled under
    QA_CACHE reads in ~0.3 s, so after the first time that is what loads.
    """
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    cache = _dictionary_cache()
    collecting = gc.isenabled()
    gc.disable()  # half a million new objects, none of them garbage: no collection passes
    try:
        try:
            with open(cache, "rb") as f:
                freq, total = pickle.load(f)
            if not isinstance(freq, dict) or not isinstance(total, int):
                raise ValueError("not a prefix table")
            tokenizer.FREQ, tokenizer.total, tokenizer.initialized = freq, total, True
        except Exception:  # absent, damaged, another Python's: jieba's own way, then write
            tokenizer.initialize()
            _write_dictionary_cache(cache, tokenizer)
    finally:
        if collecting:
            gc.enable()
    return tokenizer


def _dictionary_cache() -> Path:
    """Where the pickled prefix table lives, keyed by jieba's version and dictionary file."""
    import jieba

    from ..config import cache_root

    dictionary = Path(jieba.__file__).with_name(jieba.DEFAULT_DICT_NAME)  # what it reads
    stat = dictionary.stat()
    key = f"{jieba.__version__}\0{dictionary}\0{stat.st_size}\0{stat.st_mtime_ns}"
    digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    return cache_root() / "jieba" / f"prefix-{digest}.pickle"


def _write_dictionary_cache(cache: Path, tokenizer) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump((tokenizer.FREQ, tokenizer.total), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cache)
    except OSError as exc:  # a read-only home: jieba's own cache still works, only slower
        log.debug("jieba prefix table not cached: %s", exc)


@functools.cache
def _segmenter() -> _Segmenter:
    return _Segmenter(_dictionary())


@functools.cache
def _tagger():
    import jieba.posseg

    return jieba.posseg.POSTokenizer(_dictionary())


# jieba's tokenizers are not documented as thread-safe: one call at a time.
_LOCK = threading.Lock()

# jieba 0.42's own patterns (jieba.re_han_default, re_eng): runs it segments by dictionary,
# and the characters it glues into one word when each is cut alone.
_HAN = re.compile("([\u4e00-\u9fd5a-zA-Z0-9+#&\\._%\\-]+)")
_ENG = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
# The characters of a _HAN run that are not word characters (\w).
_SYMBOLS = frozenset("+#&.%-")


class _Segmenter:
    """jieba's `cut(text, HMM=False)` on its dictionary: the same words, ~2.3x faster.

    jieba builds a dict of candidate word ends per position (get_DAG), then the best route
    (calc) with `max` over tuples, then walks it: most of a build's keyword time. This does
    the same arithmetic in one pass per run (log(freq) - log(total) computed once per word
    and cached: the same floats in the same order, so the same ties and the same route; ties
    go to the longer word, as `max` over (score, end) does). Then `Tokenizer.words`'s
    lower-casing and filtering, per run. tests/index/test_tokenize.py compares it with jieba.
    """

    def __init__(self, jieba_tokenizer):
        self.freq = jieba_tokenizer.FREQ
        self.logtotal = math.log(jieba_tokenizer.total)
        # Fragment -> log(freq) - log(total) for a word, True for a prefix of words only;
        # filled as fragments are met, so at most the dictionary's ~500k entries.
        self.table: dict[str, float | bool] = {}

    def words(self, text: str) -> list[str]:
        out: list[str] = []
        parts = _HAN.split(text)
        for n, part in enumerate(parts):
            if not part:
                continue
            if n % 2:
                self._cut(part, out)
            else:  # jieba yields every other character alone; whitespace has no \w
                found = _WORD.findall(part)
                if found:
                    out.extend(map(str.lower, found))
        return out

    def words_among(self, text: str, wanted: Collection[str]) -> set[str]:
        """`set(self.words(text)) & set(wanted)`, cutting only the runs that hold one of
        `wanted`: a run is cut on its own, and every word it yields is part of it."""
        found: set[str] = set()
        for n, part in enumerate(_HAN.split(text)):
            if not n % 2:  # each character alone, lower-cased alone: a final Σ is σ, not ς
                found.update(w for w in map(str.lower, _WORD.findall(part)) if w in wanted)
            elif any(w in part.lower() for w in wanted):  # ASCII and Han: lower() keeps them
                out: list[str] = []
                self._cut(part, out)
                found.update(w for w in out if w in wanted)
        return found

    def _cut(self, s: str, out: list[str]) -> None:
        table, freq, logtotal, ln = self.table, self.freq.get, self.logtotal, math.log
        get = table.get
        n = len(s)
        best = [0.0] * (n + 1)  # best route score from each position, as jieba's calc
        end = [0] * (n + 1)  # where the word starting there ends (inclusive)
        for k in range(n - 1, -1, -1):
            top = None
            i = k
            frag = s[k]
            while True:  # while s[k : i + 1] is a word or a word's prefix
                v = get(frag)
                if v is None:
                    f = freq(frag)
                    if f is None:
                        break
                    v = table[frag] = ln(f) - logtotal if f else True
                if v is not True:
                    v += best[i + 1]
                    if top is None or v >= top:
                        top, stop = v, i
                i += 1
                if i == n:
                    break
                frag = s[k : i + 1]
            if top is None:  # no word starts here: the character alone, frequency 1
                top, stop = 0.0 - logtotal + best[k + 1], k
            best[k] = top
            end[k] = stop
        low = s.lower()  # ASCII letters at most: the same length, so the same offsets
        x = 0
        glued = -1  # start of single ASCII letters and digits jieba glues together
        while x < n:
            y = end[x] + 1
            if y == x + 1 and s[x] in _ENG:
                if glued < 0:
                    glued = x
                x = y
                continue
            if glued >= 0:
                out.append(low[glued:x])
                glued = -1
            if s[x] not in _SYMBOLS or _WORD.search(s[x:y]):
                out.append(low[x:y])
            x = y
        if glued >= 0:
            out.append(low[glued:])


class Tokenizer:
    """Words for keyword search and sentence matching; the dictionary loads on first use."""

    @property
    def _posseg(self):
        return _tagger()

    def words(self, text: str) -> list[str]:
        """Lower-cased jieba words, punctuation and whitespace dropped."""
        # No HMM guessing of unknown words: it cuts a name differently in different contexts
        # (赣服通有 -> 赣服/通有, 赣服通上线 -> 赣/服通), and then question and article disagree.
        # _segmenter() is jieba's cut(text, HMM=False), faster, and reads the dictionary only.
        return _segmenter().words(text)

    def words_among(self, text: str, wanted: Collection[str]) -> set[str]:
        """Which of the words `wanted` are words of `text`: `set(words(text)) & wanted`,
        cutting only the parts of `text` that hold one of them (an answer asks it of every
        candidate sentence; cutting them whole was a fifth of a served answer's time)."""
        return _segmenter().words_among(text, wanted)

    def terms(self, text: str) -> list[str]:
        """Words that carry meaning: `words` without stopwords."""
        return [w for w in self.words(text) if w not in STOPWORDS]

    def query_terms(self, text: str) -> list[str]:
        """Terms of a question, without the words that only ask (什么, 多少, 谁 ...)."""
        return [w for w in self.terms(text) if w not in QUESTION_WORDS]

    def grams(self, text: str) -> list[str]:
        """Single characters and character pairs of each run of word characters, marked.

        They match what jieba cuts differently in question and article (粤省事 -> 粤省 + 事,
        an unknown name, a paraphrase that shares half a word): on DRCD, Wikipedia articles
        of several paragraphs, BM25 over words and characters found the right paragraph first
        for 0.956 of the questions, over words alone 0.929 (docs/how-it-works.md, "Finding
        passages").
        """
        out: list[str] = []
        mark = GRAM.__add__
        for run in _RUN.findall(text.lower()):
            marked = list(map(mark, run))
            out += marked
            if len(run) > 1:  # GRAM + run[i : i + 2], each marked character + the next one
                out += map(str.__add__, marked, run[1:])
        return out

    def index_terms(self, text: str) -> list[str]:
        """What the keyword index stores for a text: its terms and its character grams."""
        return self.terms(text) + self.grams(text)

    def question_grams(self, question: str) -> list[str]:
        """The character grams of a question, without the words that only ask."""
        return self.grams(_QUESTION.sub(" ", question.lower()))

    def tagged(self, text: str) -> list[tuple[str, str]]:
        """(word, part-of-speech flag) pairs, e.g. ("江西", "ns")."""
        with _LOCK:
            return [(p.word, p.flag) for p in self._posseg.lcut(text)]
