"""The app's one shared object (`Service`): questions answered and rendered as turns, and
articles added to the corpus and indexed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import qa
from qa import Answer, Assistant, EmptyQuestionError, Final, Partial, QAError, Settings
from qa.answer.conversation import Conversation
from qa.answer.question import check_question
from qa.stores import is_milvus

from . import render
from .errors import failed
from .live import LiveAssistant, Progress
from .render import Turn
from .upload import Received, UploadResult, discard, receive_uploads, save_received
from .upload_queue import UploadQueue

NO_INDEX = "还没有可以回答的文章:请先在「添加文章」上传文章。"
SKIPPED_SHOWN = 5  # unreadable corpus files listed after a full rebuild
HISTORY_REPLAYED = 10  # earlier questions of the API's `history` that are asked again


@dataclass(frozen=True)
class Answered:
    """An answer, and the Assistant (the index) that gave it: a rebuild may swap in another
    one while the question is answered."""

    answer: Answer
    assistant: Assistant


@dataclass(frozen=True)
class Rendered:
    """An answer rendered as one conversation turn, with the query terms its passages mark."""

    turn: Turn
    answer: Answer
    terms: tuple[str, ...]


class Service:
    """The app's one shared object: the live Assistant (`live`), the rebuild after an upload,
    and the page's uploads (`uploads`, read in the background).

    Questions are answered by whichever Assistant is live when they arrive (ui/live.py): a
    rebuild, here or by `qa build`, swaps in a new one only when its index is complete.
    """

    def __init__(
        self,
        corpus: str | Path,
        index: str | Path,
        settings: Settings | None = None,
        assistant: Assistant | None = None,
    ):
        self.corpus = Path(corpus)
        self.index = index_location(index)
        self.settings = settings or Settings()
        self.live = LiveAssistant(self.index, self.settings, assistant)
        self.uploads = UploadQueue(self.corpus, self.save_and_index)

    @property
    def assistant(self) -> Assistant | None:
        return self.live.current()

    # -- asking ---------------------------------------------------------------------------

    def ask(self, question: str, history: Sequence[tuple[str, Answer]] = ()) -> Answered:
        """The answer, and the Assistant that gave it (to look up its paragraphs).

        `history`: the earlier (question, Answer) turns of this conversation, oldest first; a
        follow-up takes its subject from them (qa/answer/conversation.py).
        """
        bot = self.answering()
        return Answered(Conversation(bot, tuple(history)).ask(question), bot)

    def ask_after(self, question: str, earlier: Sequence[str]) -> Answered:
        """Answer `question` as a follow-up to the `earlier` questions (asked again, in order)."""
        bot = self.answering()
        return Answered(_chat_after(bot, earlier).ask(question), bot)

    def stream_after(self, question: str, earlier: Sequence[str]) -> Iterator[Partial | Final]:
        """`ask_after`, with a generated reply's text so far (Partial) while the model writes."""
        yield from _chat_after(self.answering(), earlier).stream(question)

    def turn(
        self, question: str, number: int, history: Sequence[tuple[str, Answer]] = ()
    ) -> Rendered:
        """Answer `question` and render it as conversation turn `number`."""
        answered = self.ask(question, history)
        return _render(answered.assistant, answered.answer, number)

    def stream_turn(
        self, question: str, number: int, history: Sequence[tuple[str, Answer]] = ()
    ) -> Iterator[Partial | Rendered]:
        """`turn`, with a generated reply's text so far (Partial) while the model writes it."""
        bot = self.answering()
        for event in Conversation(bot, tuple(history)).stream(question):
            if isinstance(event, Final):
                yield _render(bot, event.answer, number)
            else:
                yield event

    def status(self) -> str:
        bot = self.assistant
        if bot is None:
            return render.status_html(None)
        return render.status_html(bot.info())

    def answering(self) -> Assistant:
        """The live Assistant; QAError (NO_INDEX) before there is an index to answer from."""
        bot = self.assistant
        if bot is None:
            raise QAError(NO_INDEX)
        return bot

    # -- adding articles ------------------------------------------------------------------

    def add_articles(
        self, files: Sequence[tuple[Path, str]], progress: Progress | None = None
    ) -> str:
        """Save uploads into the corpus, rebuild the index, go live with it. Returns a report.

        The page does the same in the background (`uploads.receive`): reading the files of
        an upload can take minutes, and the request would hold them.
        """
        try:
            received = receive_uploads(files, self.corpus)
        except Exception as exc:  # a bug, or a disk error the saving did not expect
            return failed("保存文章失败", exc)
        return self.save_and_index(received, progress)

    def save_and_index(self, received: Received, progress: Progress | None) -> str:
        """Read the upload's files into the corpus and rebuild the index; its report."""
        try:
            result = save_received(received)
        except Exception as exc:  # a bug, or a disk error the saving did not expect
            discard(received)
            return failed("保存文章失败", exc)
        lines = [f"已保存:{', '.join(p.name for p in result.saved)}"] if result.saved else []
        lines += [f"未添加 {line}" for line in received.rejected + result.rejected]
        if result.saved:
            lines += self.rebuild(progress, result)
        return "\n".join(lines) if lines else "没有选择文件。"

    def rebuild(
        self, progress: Progress | None = None, uploaded: UploadResult | None = None
    ) -> list[str]:
        """Bring the index up to date with the corpus folder; lines for the user.

        Whatever goes wrong, the index that answered before keeps answering, and the
        message says so: the app never shows a bare "Error" for a rebuild.
        """
        try:
            stats = self.live.build(self.corpus, progress)
        except qa.BuildLockedError:
            return ["另一个进程正在建立这个索引,文章已保存,稍后点「重新建立索引」即可。"]
        except Exception as exc:
            return [failed("建立索引失败,仍用原来的索引回答", exc)]
        if uploaded:
            # Lines about the uploaded files: their skipped records, their renamed ids, and
            # any other article that lost a duplicate id to them.
            names = [p.name for p in uploaded.saved]
            skipped = [s for s in stats.skipped if any(n in s for n in names)]
            notes = [s for s in stats.notes if any(n in s for n in names)]
        else:
            skipped = list(stats.skipped[:SKIPPED_SHOWN])
            notes = list(stats.notes[:SKIPPED_SHOWN])
        lines = [
            f"索引已更新:{stats.articles} 篇文章(新增 {stats.added},修改 {stats.changed},"
            f"删除 {stats.removed}),新嵌入 {stats.embedded} 个段落,用时 {stats.seconds:.1f} 秒。"
        ]
        return lines + [f"跳过 {line}" for line in skipped] + [f"注意 {line}" for line in notes]


def _chat_after(bot: Assistant, earlier: Sequence[str]) -> Conversation:
    chat = Conversation(bot)
    # The earlier questions are searched again, never sent to the model (qa/generate/llm.py).
    for q in replayed(earlier):
        chat.remember(q)
    return chat


def _render(bot: Assistant, answer: Answer, number: int) -> Rendered:
    terms = tuple(bot.tokenizer.query_terms(answer.searched))
    paragraphs = [bot.context(c) for c in answer.citations]
    sources = render.sources_html(answer, paragraphs, terms, number)
    reply = render.reply_html(answer, number)
    return Rendered(Turn(number, answer.question, reply, sources), answer, terms)


def replayed(earlier: object) -> list[str]:
    """The questions of the API's `history` that are asked again: of its last HISTORY_REPLAYED
    items, the strings with words in them, each cut to MAX_QUESTION_CHARS.

    A client's history is whatever it sent (thousands of items, objects, 10 MB strings): the
    rest is ignored, unread.
    """
    if not isinstance(earlier, list | tuple):
        return []
    out = []
    for item in earlier[-HISTORY_REPLAYED:]:
        try:
            out.append(check_question(item))
        except EmptyQuestionError:
            pass  # not a question: nothing to take a subject from
    return out


def index_location(index: str | Path) -> str | Path:
    """A folder as a Path; a Milvus address (milvus://..., milvus+http://...) as it is."""
    return index if is_milvus(index) else Path(index)
