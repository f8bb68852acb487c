"""Follow-up questions: `bot.chat()` is a Conversation that carries the subject along.

    chat = bot.chat()
    chat.ask("赣服通集成了多少项服务?")
    chat.ask("它有多少用户?")        # searched as 赣服通有多少用户?
    chat.ask("那粤省事呢?")          # searched as 粤省事集成了多少项服务?

The subject of a turn is what its question shares with the title of the article that
answered it (赣服通 of 「赣服通」上线一周年…), or that title. A later question takes it when
it points back (它, 他, 她, 其, 该…, 这个…), is a bare 那…呢?, or names no subject of its own.
Whether a question names its own subject is read from the index, not from a word list: asked
alone, its best passage is confident and its article's title shares a name with the question.
A question without a pronoun is completed only when the completed question finds a clearly
more confident passage than the question alone (docs/how-it-works.md, "Follow-up questions").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..config import Settings
from ..index.tokenize import Tokenizer
from ..types import Answer, Citation, Final, Partial
from .confidence import Match
from .question import MAX_QUESTION_CHARS, check_question, cut_question


class Answerer(Protocol):
    """What a Conversation needs of an Assistant (qa/assistant.py), which makes it."""

    settings: Settings
    tokenizer: Tokenizer

    def stream(
        self,
        question: str,
        *,
        prefer: Mapping[tuple[str, int], float] | None = None,
        turns: Sequence[tuple[str, Answer]] = (),
    ) -> Iterator[Partial | Final]: ...

    def extractive(
        self, question: str, *, prefer: Mapping[tuple[str, int], float] | None = None
    ) -> Answer: ...

    def best_match(self, question: str) -> Match: ...

    def context(self, citation: Citation) -> str: ...


# Words that point back at something said before. jieba keeps 其他, 其中, 因此, 应该 ... whole,
# so a token match does not fire on them.
POINTING = frozenset(
    "它 他 她 其 它们 他们 她们 该 此 这个 这位 这家 这所 这座 这种 这款 这项 这部 这本 这些 "
    "此人 该地 此地 这里 本书 这次".split()
)
PERSONAL = frozenset("它 他 她 其 它们 他们 她们".split())
_BARE = re.compile(r"^(?:那么?|还有|而)?\s*(?P<x>[^?？。!！]+?)\s*呢\s*[?？。]?$")
_ASKS = re.compile(r"什么|多少|几|谁|哪|何|怎|吗|如何|为什么|是否")
_BRACKETS = re.compile(r"[「」『』“”\"《》〈〉()（）\[\]【】]")
_CUT = re.compile(r"[:：,，;；—\-|·\s]")
# A question without a pronoun is completed only when the completed question's best passage
# is this much more confident than the question's own (confidence is about 0..2.5).
COMPLETE_MARGIN = 0.15
# Bonus to the retrieval score (0..1) of the paragraphs the previous answer cited, for a
# question completed from the conversation (docs/how-it-works.md, "Follow-up questions").
STAY = 0.4
MAX_SUBJECT_CHARS = 12  # a longer title is not a subject to put into a question
TURNS_KEPT = 20


@dataclass(frozen=True)
class Reading:
    """How a question was understood: what to search, and the subject it is about."""

    searched: str
    subject: str


def longest_common(a: str, b: str) -> str:
    """The longest run of `a` found in `b` that starts and ends with a word character
    ("" when none); a name's inner dot stays (大卫·佩特鲁齐)."""
    best = ""
    for i in range(len(a)):
        if not a[i].isalnum():
            continue
        j = i + len(best) + 1
        if a[i:j] not in b:
            continue
        while j < len(a) and a[i : j + 1] in b:
            j += 1
        piece = a[i:j]
        while piece and not piece[-1].isalnum():
            piece = piece[:-1]
        if len(piece) > len(best):
            best = piece
    return best


def subject_of(question: str, title: str) -> str:
    """The subject of a question answered from an article titled `title`.

    The longest name the question shares with the title (赣服通 for 赣服通集成了多少项服务? and
    「赣服通」上线一周年:…); else the title's first part when it is short enough to be a name.
    """
    shared = longest_common(question, _BRACKETS.sub("", title))
    if len(shared) >= 2:
        return shared
    head = _CUT.split(_BRACKETS.sub("", title).strip(), 1)[0]
    return head if 2 <= len(head) <= MAX_SUBJECT_CHARS else ""


def bare_subject(question: str) -> str | None:
    """X of a bare 那X呢? (a question that only names a new subject), else None."""
    m = _BARE.match(question.strip())
    if not m or _ASKS.search(m.group("x")):
        return None
    return m.group("x").strip()


class Conversation:
    """A conversation with an Assistant: each question may use what was asked before.

    `turns` holds (question, Answer) pairs, oldest first; `Answer.question` is what the user
    typed and `Answer.searched` what was searched. Not thread-safe: one per user.
    """

    def __init__(
        self,
        assistant: Answerer,
        turns: tuple[tuple[str, Answer], ...] = (),
        stay: float = STAY,
    ):
        self.assistant = assistant
        self.stay = stay
        self.turns: list[tuple[str, Answer]] = list(turns)
        self._subject = ""
        for _, answer in self.turns:
            self._subject = self._subject_after(answer) or self._subject

    def ask(self, question: str) -> Answer:
        """Answer `question` in the light of the earlier turns, as `Assistant.ask` does:
        generated and verified when the assistant has a chat model, else extractive."""
        *_, last = self.stream(question)
        return last.answer

    def stream(self, question: str) -> Iterator[Partial | Final]:
        """`ask`, for showing a generated reply as it is written: its text so far (Partial)
        while the model writes, then the answer (Final). Without a model, only the Final."""
        question, reading, prefer = self._read(question)
        bot = self.assistant
        for event in bot.stream(reading.searched, prefer=prefer, turns=self.turns):
            if isinstance(event, Final):
                answer = self._asked(event.answer, question, reading)
                self._record(answer, reading)
                event = Final(answer)
            yield event

    def remember(self, question: str) -> Answer:
        """Take `question` as asked before, answered extractively (never by the model): an
        earlier turn replayed from a client's history costs one search, not a generation."""
        question, reading, prefer = self._read(question)
        answer = self.assistant.extractive(reading.searched, prefer=prefer)
        answer = self._asked(answer, question, reading)
        self._record(answer, reading)
        return answer

    def _read(self, question: str) -> tuple[str, Reading, dict[tuple[str, int], float]]:
        """The question checked, how it is understood, and the paragraphs it prefers."""
        question = check_question(question)  # cut before it is read, and echoed, in full
        reading = self.understand(question)
        # A follow-up often continues where the last answer was found: its paragraphs weigh in.
        prefer = {}
        if reading.subject and reading.searched != question and self.turns:
            prefer = {(c.article_id, c.paragraph): self.stay for c in self.turns[-1][1].citations}
        return question, reading, prefer

    @staticmethod
    def _asked(answer: Answer, question: str, reading: Reading) -> Answer:
        """`answer` to what was searched, as the answer to what the user typed."""
        return dataclasses.replace(answer, question=question, searched=reading.searched)

    def _record(self, answer: Answer, reading: Reading) -> None:
        self.turns = [*self.turns, (answer.question, answer)][-TURNS_KEPT:]
        self._subject = reading.subject or self._subject_after(answer)

    def reset(self) -> None:
        """Forget the earlier turns: the next question starts a new conversation."""
        self.turns = []
        self._subject = ""

    @property
    def subject(self) -> str:
        """What the conversation is about so far ("" before the first answer)."""
        return self._subject

    def understand(self, question: str) -> Reading:
        """What to search for `question`, given the subject of the earlier turns; at most
        MAX_QUESTION_CHARS of it, like the question (a subject put into it may make it longer)."""
        reading = self._understand(cut_question(question))
        return dataclasses.replace(reading, searched=reading.searched[:MAX_QUESTION_CHARS])

    def _understand(self, question: str) -> Reading:
        bot = self.assistant
        subject = self._subject
        if not subject or not self.turns:
            return Reading(question, "")
        previous = self.turns[-1][1].searched
        new = bare_subject(question)
        if new is not None:  # 那粤省事呢?: the previous question about a new subject
            if subject in previous:
                return Reading(previous.replace(subject, new), new)
            return Reading(f"{new} {previous}", new)
        if subject in question:
            return Reading(question, subject)
        match = bot.best_match(question)
        confident = match.confidence >= bot.settings.min_confidence
        if confident and len(own := longest_common(question, _BRACKETS.sub("", match.title))) >= 2:
            if own not in subject:  # it names its own subject: a new topic
                return Reading(question, "")
        low, pos = question.lower(), 0
        for word in bot.tokenizer.words(question):
            at = low.find(word, pos)
            pos = at + len(word) if at >= 0 else pos
            if word not in POINTING or at < 0:
                continue
            if word in PERSONAL:  # the word itself, not a 它 inside 其它
                return Reading(question[:at] + subject + question[pos:], subject)
            return Reading(f"{subject} {question}", subject)
        completed = f"{subject}{question}"
        if bot.best_match(completed).confidence >= match.confidence + COMPLETE_MARGIN:
            return Reading(completed, subject)
        return Reading(question, "")

    def _subject_after(self, answer: Answer) -> str:
        """The subject a turn leaves behind: from its searched question and answering title."""
        if not answer.found:  # a refused question's passages say nothing about the subject
            return self._subject
        title = _BRACKETS.sub("", answer.citations[0].title)
        shared = longest_common(answer.searched, title)
        if len(shared) >= 2:
            return shared
        if self._subject and self._subject in title:  # still the same article: same subject
            return self._subject
        return subject_of(answer.searched, title)
