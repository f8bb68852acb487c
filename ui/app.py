"""The browser app (`qa serve`): chat with cited sources, article upload, a JSON API.

    from ui.app import serve
    serve("corpus", "index")          # http://127.0.0.1:7860

Gradio is imported only when the app is built, after the offline switches are set.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import qa
from qa import Answer, Assistant, EmptyQuestionError, QAError, Settings
from qa.answer.conversation import Conversation
from qa.answer.question import MAX_QUESTION_CHARS, check_question, cut_question
from qa.stores import is_milvus, open_store, redact

from . import render, theme
from .render import Turn
from .upload import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_FILES,
    UPLOAD_SUFFIXES,
    Received,
    UploadResult,
    discard,
    receive_uploads,
    save_received,
    stage,
)

TITLE = "文章问答"
DESCRIPTION = "就文章库里的文章提问:回答只摘录原文句子,每句都标出处,点击 [1] 查看原文。"
NO_INDEX = "还没有可以回答的文章:请先在「添加文章」上传文章。"
SKIPPED_SHOWN = 5  # unreadable corpus files listed after a full rebuild
ASK_CONCURRENCY = 4  # questions answered at once; each takes ~0.1 s of CPU
RELOAD_CHECK_SECONDS = 1.0  # how often a question may look for an index built elsewhere
HISTORY_KEPT = 10  # earlier turns a browser session keeps for follow-up questions
# Turns a page keeps (older ones drop off with a line saying so): as many as the sources panel
# shows, so every [n] on the page still reaches its source. A tab kept every turn, and sent
# them all again with every update of a streaming reply.
TURNS_KEPT = render.TURNS_SHOWN
WAIT = "请等上一个回答完成,问题还在输入框里,稍后再按 Enter。"
STREAM_EVERY = 0.1  # seconds between updates of a reply while the model writes it
HISTORY_REPLAYED = 10  # earlier questions of the API's `history` that are asked again
QUEUE_MAX = 64  # requests waiting in Gradio's queue; more are refused at once ("queue full")
# Browser tabs whose conversation the server keeps; beyond it, the tab used longest ago starts
# over. A tab holds up to ~0.2 MB (TURNS_KEPT turns); Gradio's default of 10,000 tabs was 2 GB.
SESSIONS_KEPT = 1000
# Gradio's copies of uploads (saved into the corpus by then): swept every hour, once a day old.
DELETE_CACHE = (3600, 86400)
UPLOADS_WAITING = 4  # uploads taken in while another is read and indexed; more are refused
UPLOADS_KEPT = 100  # reports of recent uploads, for the pages that follow them
FOLLOW_SECONDS = 1.0  # how often a page asks how its uploads are going

Progress = Callable[[str, int, int], None]


class _Upload:
    """An upload being read, saved and indexed in the background, and what its page shows.

    `report` and `done` are each replaced whole by the one thread that reads uploads.
    """

    def __init__(self, received: Received, report: str):
        self.received = received
        self.report = report
        self.done = not received.kept


class Service:
    """The app's one shared object: the live Assistant, and the rebuild after an upload.

    Questions are answered by whichever Assistant is live when they arrive; a rebuild
    swaps in a new one when its index is complete, so answers never see a half-built index.
    An index rebuilt by another process (`qa build`) is noticed by the next question, at
    most once a second, loaded in the background and swapped in the same way.
    The page's uploads are read, saved and indexed by one thread of their own, in the order
    they came (`receive`), so that no request waits for them.
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
        self.store = open_store(self.index)
        self.settings = settings or Settings()
        self._assistant = assistant
        self._swap = threading.Lock()
        self._building = threading.Lock()  # one rebuild or reload at a time in this process
        # The generation the live Assistant was loaded from (assumed the current one).
        self._generation = self._live() if assistant is not None else None
        self._next_check = 0.0
        self._unloadable: set[str] = set()  # generations that failed to load: not retried
        self._waiting: queue.Queue[_Upload] = queue.Queue(UPLOADS_WAITING)
        self._uploads: dict[int, _Upload] = {}  # by number, the last UPLOADS_KEPT
        self._numbers = itertools.count(1)
        self._reader: threading.Thread | None = None  # reads the uploads, one after another
        self._uploads_lock = threading.Lock()

    @property
    def assistant(self) -> Assistant | None:
        self._notice_new_index()
        with self._swap:
            return self._assistant

    def ask(
        self, question: str, history: Sequence[tuple[str, Answer]] = ()
    ) -> tuple[Assistant, Answer]:
        """The answer, and the Assistant that gave it (to look up its paragraphs).

        `history`: the earlier (question, Answer) turns of this conversation, oldest first; a
        follow-up takes its subject from them (qa/answer/conversation.py).
        """
        bot = self.assistant
        if bot is None:
            raise QAError(NO_INDEX)
        if not history and not bot.settings.llm_url:
            return bot, bot.ask(question)
        return bot, Conversation(bot, tuple(history)).ask(question)

    def stream_turn(
        self, question: str, number: int, history: Sequence[tuple[str, Answer]] = ()
    ) -> Iterator[str | tuple[Turn, Answer, list[str]]]:
        """`turn`, with a generated reply's text (str) while the model writes it."""
        bot = self.assistant
        if bot is None:
            raise QAError(NO_INDEX)
        for item in Conversation(bot, tuple(history)).stream(question):
            if isinstance(item, str):
                yield item
            else:
                yield self._render(bot, item, number)

    def ask_after(self, question: str, earlier: Sequence[str]) -> tuple[Assistant, Answer]:
        """Answer `question` as a follow-up to the `earlier` questions (asked again, in order)."""
        bot = self.assistant
        if bot is None:
            raise QAError(NO_INDEX)
        chat = Conversation(bot)
        # The earlier questions are searched again, never sent to the model (qa/generate/llm.py).
        for q in replayed(earlier):
            chat.remember(q)
        return bot, chat.ask(question)

    def turn(
        self, question: str, number: int, history: Sequence[tuple[str, Answer]] = ()
    ) -> tuple[Turn, Answer, list[str]]:
        """Answer `question` and render it as conversation turn `number`."""
        bot, answer = self.ask(question, history)
        return self._render(bot, answer, number)

    def _render(
        self, bot: Assistant, answer: Answer, number: int
    ) -> tuple[Turn, Answer, list[str]]:
        terms = bot.tokenizer.query_terms(answer.searched)
        paragraphs = [_paragraph(bot, c) for c in answer.citations]
        sources = render.sources_html(answer, paragraphs, terms, number)
        reply = render.reply_html(answer, number)
        return Turn(number, answer.question, reply, sources), answer, terms

    def status(self) -> str:
        bot = self.assistant
        if bot is None:
            return render.status_html(None)
        return render.status_html(bot.info())

    def add_articles(
        self, files: Sequence[tuple[Path, str]], progress: Progress | None = None
    ) -> str:
        """Save uploads into the corpus, rebuild the index, go live with it. Returns a report.

        The page does the same in the background (`receive`): reading the files of an
        upload can take minutes, and the request would hold them.
        """
        try:
            received = receive_uploads(files, self.corpus)
        except Exception as exc:  # a bug, or a disk error the saving did not expect
            return _failed("保存文章失败", exc)
        return self._add(received, progress)

    def receive(self, files: Sequence[tuple[Path, str]]) -> int:
        """Take an upload in at once (names, types and sizes checked, the files kept); they
        are read, saved and indexed in the background, one upload after another. Returns
        the upload's number for `upload_report`."""
        try:
            received = receive_uploads(files, self.corpus)
        except Exception as exc:  # a bug, or a disk error the saving did not expect
            return self._keep_report(_Upload(Received((), ()), _failed("保存文章失败", exc)))
        refused = [f"未添加 {line}" for line in received.rejected]
        if not received.kept:
            return self._keep_report(_Upload(received, "\n".join(refused) or "没有选择文件。"))
        names = ", ".join(k.target.name for k in received.kept)
        upload = _Upload(
            received,
            "\n".join([f"已收到:{names},正在读取并建立索引…(完成前仍用原来的索引回答)", *refused]),
        )
        try:
            self._waiting.put_nowait(upload)
        except queue.Full:
            discard(received)
            busy = f"还有 {UPLOADS_WAITING} 批上传在等待,这次的文件没有添加,请稍后再上传。"
            return self._keep_report(_Upload(Received((), ()), "\n".join([busy, *refused])))
        with self._uploads_lock:
            if self._reader is None:
                self._reader = threading.Thread(target=self._read_uploads, daemon=True)
                self._reader.start()
        return self._keep_report(upload)

    def upload_report(self, numbers: Sequence[int]) -> tuple[str, list[int]]:
        """What the uploads `numbers` (from `receive`) have come to, and those of them still
        being read or indexed."""
        with self._uploads_lock:
            uploads = {n: self._uploads[n] for n in numbers if n in self._uploads}
        report = "\n\n".join(upload.report for upload in uploads.values())
        return report, [n for n, upload in uploads.items() if not upload.done]

    def _keep_report(self, upload: _Upload) -> int:
        with self._uploads_lock:
            number = next(self._numbers)
            self._uploads[number] = upload
            for old in list(self._uploads)[:-UPLOADS_KEPT]:
                if self._uploads[old].done:
                    del self._uploads[old]
        return number

    def _read_uploads(self) -> None:
        """The thread that reads, saves and indexes the uploads, in the order they came."""
        while True:
            upload = self._waiting.get()
            try:
                upload.report = self._add(upload.received, _shown_on(upload))
            except Exception as exc:  # a bug: the next upload is still read
                discard(upload.received)
                upload.report = _failed("添加文章失败", exc)
            upload.done = True

    def _add(self, received: Received, progress: Progress | None) -> str:
        try:
            result = save_received(received)
        except Exception as exc:  # a bug, or a disk error the saving did not expect
            discard(received)
            return _failed("保存文章失败", exc)
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
        with self._building:
            try:
                stats = qa.build(self.corpus, self.index, self.settings, progress=progress)
                self._load_and_swap()
            except qa.BuildLockedError:
                return ["另一个进程正在建立这个索引,文章已保存,稍后点「重新建立索引」即可。"]
            except Exception as exc:
                return [_failed("建立索引失败,仍用原来的索引回答", exc)]
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

    def _load_and_swap(self) -> None:
        """Load the live index and make it the one that answers. Caller holds `_building`."""
        with self._swap:
            current = self._assistant
        generation = self._live()  # read first: a later build means a reload
        fresh = qa.load(
            self.index,
            self.settings,
            # Reuse the loaded model (when the new index was embedded the same way): the first
            # question after the swap stays fast.
            embedder=current.embedder if current is not None else None,
        )
        fresh.search("预热")  # read jieba's tables here, not in the first question
        with self._swap:
            self._assistant, self._generation = fresh, generation

    def _live(self) -> str | None:
        """The live index generation; None where the store is not watched (Milvus)."""
        return self.store.generation()

    def _notice_new_index(self) -> None:
        """Start loading the index in the background if another process replaced it."""
        now = time.monotonic()
        with self._swap:
            if now < self._next_check:
                return
            self._next_check = now + RELOAD_CHECK_SECONDS
            known = self._generation
        live = self._live()
        if live is None or live == known or live in self._unloadable:
            return
        if self._building.acquire(blocking=False):  # else a rebuild here will swap it in
            threading.Thread(target=self._reload, args=(live,), daemon=True).start()

    def _reload(self, live: str) -> None:
        try:
            with self._swap:
                if self._generation == live:  # another question got here first
                    return
            self._load_and_swap()
        except Exception as exc:  # e.g. rebuilt with another model: keep answering from the old
            self._unloadable.add(live)
            print(f"qa: not switching to the rebuilt index: {exc}", file=sys.stderr)
        finally:
            self._building.release()


def _shown_on(upload: _Upload) -> Progress:
    """Progress written under what the upload's report said when its reading began."""
    taken = upload.report

    def progress(what: str, done: int, total: int) -> None:
        label = stage(what, "正在嵌入新文章的段落")
        upload.report = f"{taken}\n{label['desc']}:{done}/{total} {label['unit']}"

    return progress


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


_SESSIONS = threading.Lock()  # held only to read or change a few fields of a Session


@dataclass
class Session:
    """One browser tab's conversation. Gradio keeps it (a gr.State) and hands the same object to
    every handler of the tab, which change it in place: a reply still being written checks
    `generation` before it writes, so 新对话 pressed meanwhile wins."""

    turns: list[Turn] = field(default_factory=list)  # the last TURNS_KEPT, as shown
    history: list[tuple[str, Answer]] = field(default_factory=list)  # the last HISTORY_KEPT
    asked: int = 0  # questions answered in this conversation: the next turn's number - 1
    generation: int = 0  # 新对话 starts the next one
    answering: bool = False  # a reply of this conversation is being written

    def start(self) -> int | None:
        """Take a question: the generation it belongs to, or None while a reply is written."""
        with _SESSIONS:
            if self.answering:
                return None
            self.answering = True
            return self.generation

    def finish(self, generation: int) -> None:
        with _SESSIONS:
            if generation == self.generation:
                self.answering = False

    def add(self, generation: int, turn: Turn, answer: Answer) -> bool:
        """Keep an answered turn; False (and nothing kept) if 新对话 came first."""
        with _SESSIONS:
            if generation != self.generation:
                return False
            self.turns = [*self.turns, turn][-TURNS_KEPT:]
            self.history = [*self.history, (answer.question, answer)][-HISTORY_KEPT:]
            self.asked += 1
            return True

    def reset(self) -> None:
        """新对话: forget the turns; a reply still being written is dropped."""
        with _SESSIONS:
            self.turns, self.history, self.asked = [], [], 0
            self.generation += 1
            self.answering = False

    def chat(self) -> list[dict]:
        """The Chatbot value: the kept turns, after a line on the ones dropped."""
        return render.chat_messages(self.turns, dropped=self.asked - len(self.turns))


def _failed(what: str, exc: Exception) -> str:
    """One line for the page: what failed and why. An error that is not a QAError is a bug:
    its traceback goes to the server's log, its one-line reason to the page."""
    if isinstance(exc, QAError):
        return f"{what}:{exc}"
    traceback.print_exception(exc, file=sys.stderr)
    return f"{what}:{_one_line(exc)}(程序错误,详情见服务器日志)"


def _one_line(exc: BaseException) -> str:
    """An unexpected exception as one short line, without any Milvus credentials."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return redact_secrets(redact(text))[:300]


def redact_secrets(text: str) -> str:
    """`text` without QA_AUTH's, QA_MILVUS_TOKEN's or QA_LLM_KEY's secret in it."""
    for name in ("QA_MILVUS_TOKEN", "QA_AUTH", "QA_LLM_KEY"):
        value = os.environ.get(name, "").strip()  # as used (qa/generate/llm.py: model_key)
        for secret in {value, *value.split(":")[1:]} - {""}:
            text = text.replace(secret, "***")
    return text


def index_location(index: str | Path) -> str | Path:
    """A folder as a Path; a Milvus address (milvus://..., milvus+http://...) as it is."""
    return index if is_milvus(index) else Path(index)


def _paragraph(bot: Assistant, citation: qa.Citation) -> str:
    try:
        return bot.paragraph(citation.article_id, citation.paragraph)
    except (KeyError, IndexError):
        return citation.sentence


def answer_dict(answer: Answer) -> dict:
    """The JSON the `ask` API endpoint returns."""
    return {
        "question": answer.question,
        "searched": answer.searched,
        "text": answer.text,
        "found": answer.found,
        "citations": [{"n": n, **asdict(c)} for n, c in enumerate(answer.citations, 1)],
        "passages": [asdict(p) for p in answer.passages],
        "seconds": round(answer.seconds, 4),
        "generated": answer.generated,
        "unsupported": list(answer.unsupported),
        "note": answer.note,
    }


def upload_pairs(paths: Sequence[str] | None) -> list[tuple[Path, str]]:
    """(temporary path, original name) for Gradio's uploads, which keep the original name."""
    return [(Path(p), Path(p).name) for p in paths or []]


def remove_uploads(paths: Sequence[str] | None) -> None:
    """Delete Gradio's temporary copies of uploaded files (and their folders, if empty)."""
    for p in paths or []:
        path = Path(p)
        try:
            path.unlink(missing_ok=True)
            path.parent.rmdir()  # Gradio keeps each upload in a folder of its own
        except OSError:
            pass  # not empty, or already gone; delete_cache sweeps the rest


# -- the Gradio app ------------------------------------------------------------------------


def build_app(service: Service):
    """The Gradio Blocks for `service` (not launched)."""
    import gradio as gr

    skip = (gr.skip(),) * 4

    def respond(question: str, session: Session):
        # A generator: the question is taken (the box cleared, once), a generated reply is shown
        # as it streams, then replaced by the verified answer (without a model the first item
        # is the answer). The box's max_length holds only in a browser: cut here.
        question = cut_question(question) if isinstance(question, str) else ""
        if not question:
            yield skip
            return
        generation = session.start()
        if generation is None:  # one reply at a time: the text typed stays in the box
            gr.Warning(WAIT, title="提示")
            yield skip
            return
        try:
            yield from answer(question, session, generation)
        finally:
            session.finish(generation)

    def as_now(session: Session):
        # A reply that finds 新对话 was pressed meanwhile writes the chat as it is now, last:
        # Gradio sends a reply's last update again when it ends (the old turns came back).
        return gr.skip(), session.chat(), gr.skip(), gr.skip()

    def answer(question: str, session: Session, generation: int):
        earlier = session.chat()  # sent in full once; Gradio sends a stream's updates as diffs
        asked = {"role": "user", "content": render.user_html(question)}
        yield "", [*earlier, asked], gr.skip(), gr.skip()
        shown_at = 0.0
        try:
            for item in service.stream_turn(question, session.asked + 1, session.history):
                if generation != session.generation:
                    yield as_now(session)
                    return
                if isinstance(item, str):
                    # A reply written a character at a time is shown at most 10 times a
                    # second, not once per character. The box is left alone: the next
                    # question may be being typed into it.
                    if time.monotonic() - shown_at < STREAM_EVERY:
                        continue
                    shown_at = time.monotonic()
                    partial = earlier + render.pending_messages(question, item)
                    yield gr.skip(), partial, gr.skip(), gr.skip()
                    continue
                turn, reply, terms = item
        except Exception as exc:
            if generation != session.generation:
                yield as_now(session)
                return
            if isinstance(exc, QAError):
                gr.Warning(str(exc), title="提示")
            else:  # a bug: one line on the page, the traceback in the log
                gr.Warning(_failed("回答失败", exc), title="提示")
            # Off the page, streamed text and all; the question back in the box, to ask again.
            yield question, earlier, gr.skip(), gr.skip()
            return
        if not session.add(generation, turn, reply):
            yield as_now(session)
            return
        yield (
            gr.skip(),
            session.chat(),
            render.panel_html(session.turns),
            render.passages_html(reply, terms),
        )

    def new_conversation(session: Session):
        session.reset()
        return [], render.panel_html([]), render.passages_html(None, []), ""

    def ask(question: str, history: list[str] | None = None) -> dict:
        """Answer a question from the articles: text with [n] markers, citations, passages.

        `history`: the earlier questions of the conversation, oldest first; a follow-up such
        as 它有多少用户? then takes its subject from them (the answer's "searched" says how).
        """
        try:
            _, answer = service.ask_after(question, history or [])
        except QAError as exc:
            raise gr.Error(str(exc)) from None
        except Exception as exc:
            raise gr.Error(_failed("回答失败", exc)) from None
        return answer_dict(answer)

    def add(paths: list[str] | None, following: list[int]):
        # The files are taken in and the page answered at once; they are read and indexed
        # in the background, and `follow` shows how that goes (reading can take minutes).
        try:
            number = service.receive(upload_pairs(paths))
        finally:
            remove_uploads(paths)  # kept in the corpus folder by now, or refused
        _, pending = service.upload_report(following)
        following = [*pending, number]  # this page's uploads still under way, and this one
        message, pending = service.upload_report(following)
        return None, message, service.status(), following, gr.Timer(active=bool(pending))

    def follow(following: list[int]):
        message, pending = service.upload_report(following)
        return message, service.status(), gr.Timer(active=bool(pending))

    def rebuild(progress=gr.Progress()):  # noqa: B008
        def report(what: str, done: int, total: int) -> None:
            progress((done, total), **stage(what, "正在嵌入段落"))

        progress(0, desc="正在读取文章…")
        message = "\n".join(service.rebuild(report))
        return message, service.status()

    with gr.Blocks(title=TITLE, fill_width=False, delete_cache=DELETE_CACHE) as demo:
        session = gr.State(Session())  # copied for each tab
        following = gr.State([])  # this page's uploads (`Service.receive` numbers)
        gr.HTML(
            f'<header class="qa-header"><h1>{TITLE}</h1><p>{DESCRIPTION}</p></header>',
            elem_id="qa-header",
        )
        status = gr.HTML(service.status(), elem_id="qa-status")
        with gr.Row(equal_height=False, elem_id="qa-main"):
            with gr.Column(scale=3, min_width=380, elem_id="qa-chat-column"):
                chat = gr.Chatbot(
                    label="对话",
                    elem_id="qa-chat",
                    height=520,
                    sanitize_html=True,
                    render_markdown=False,
                    latex_delimiters=[],
                    buttons=[],  # "copy" would copy the message's HTML source
                    feedback_options=None,
                    placeholder='<div class="qa-placeholder">就文章库里的内容提问。</div>',
                )
                with gr.Row(elem_id="qa-ask-row"):
                    question = gr.Textbox(
                        show_label=False,
                        placeholder="输入问题,按 Enter 提问",
                        elem_id="qa-question",
                        container=False,
                        scale=5,
                        autofocus=True,
                        max_length=MAX_QUESTION_CHARS,
                    )
                    send = gr.Button("提问", variant="primary", scale=1, min_width=80)
                    new_chat = gr.Button("新对话", scale=1, min_width=80, elem_id="qa-new-chat")
            with gr.Column(scale=2, min_width=340, elem_id="qa-sources-column"):
                sources = gr.HTML(render.panel_html([]), elem_id="qa-sources", label="来源")
                with gr.Accordion("全部检索段落", open=False, elem_id="qa-passages-box"):
                    passages = gr.HTML(render.passages_html(None, []), elem_id="qa-passages")
        empty = service.assistant is None
        with gr.Accordion("添加文章", open=empty, elem_id="qa-upload-box"):
            gr.Markdown(
                f"支持 {' '.join(UPLOAD_SUFFIXES)},每个文件不超过 "
                f"{MAX_UPLOAD_BYTES // 1024 // 1024} MB,一次最多 {MAX_UPLOAD_FILES} 个;"
                "同名文件不会被覆盖。上传后只为新文章计算向量,完成前仍用旧索引回答。"
            )
            files = gr.File(
                label="选择或拖入文章",
                file_count="multiple",
                elem_id="qa-upload",
                height=140,
            )
            upload_message = gr.Textbox(
                label="上传结果", interactive=False, lines=2, elem_id="qa-upload-message"
            )
            rebuild_button = gr.Button("重新建立索引", size="sm", elem_id="qa-rebuild")
            timer = gr.Timer(FOLLOW_SECONDS, active=False)  # runs while an upload is read

        # "multiple": a question sent while a reply is written reaches respond, which says to
        # wait ("once" dropped it without a word, and 提问 raced the Enter key).
        gr.on(
            [question.submit, send.click],
            respond,
            [question, session],
            [question, chat, sources, passages],
            api_visibility="private",
            concurrency_id="ask",
            concurrency_limit=ASK_CONCURRENCY,
            show_progress="minimal",
            trigger_mode="multiple",
        )
        # A reply still being written when 新对话 is pressed writes nothing more: it checks
        # Session.generation. Not cancels=[asking]: Gradio closes the reply's generator only
        # between two of its steps, and 新对话 then waited for it, up to a minute.
        chat.clear(
            lambda s: new_conversation(s)[1:3],
            session,
            [sources, passages],
            api_visibility="private",
        )
        new_chat.click(
            new_conversation,
            session,
            [chat, sources, passages, question],
            api_visibility="private",
        )
        files.upload(
            add,
            [files, following],
            [files, upload_message, status, following, timer],
            show_progress_on=[upload_message, status],
            api_visibility="private",
            concurrency_id="upload",
            concurrency_limit=1,
        )
        timer.tick(
            follow,
            following,
            [upload_message, status, timer],
            api_visibility="private",
            concurrency_id="follow",
            concurrency_limit=None,  # reads a few strings
        )
        rebuild_button.click(
            rebuild,
            None,
            [upload_message, status],
            show_progress_on=[upload_message, status],
            api_visibility="private",
            concurrency_id="build",
            concurrency_limit=1,
        )
        gr.api(ask, api_name="ask", concurrency_id="ask", concurrency_limit=ASK_CONCURRENCY)
    return demo


def launch_kwargs() -> dict:
    """`demo.launch` settings besides address and login: looks, no share link, nothing online."""
    return {
        "theme": theme.theme(),
        "css": theme.CSS,
        "js": theme.JS,
        "footer_links": ["api"],
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
        "max_file_size": MAX_UPLOAD_BYTES,
        "state_session_capacity": SESSIONS_KEPT,
    }


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """'user:password' as a tuple; None when no login is wanted."""
    if not value:
        return None
    user, sep, password = value.strip().partition(":")
    if not sep or not user or not password:
        raise QAError(
            "The login must look like user:password (from QA_AUTH, --auth-file or --auth)."
        )
    return user, password


def read_auth(auth: str | None = None, auth_file: str | Path | None = None) -> str | None:
    """The 'user:password' login: from `auth_file` (its first line), else `auth`, else QA_AUTH.

    A login typed on the command line is visible to every user of the machine in `ps`: a
    warning says so, and that QA_AUTH or --auth-file are not.
    """
    if auth_file:
        try:
            lines = Path(auth_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise QAError(
                f"Cannot read the login file {auth_file} ({getattr(exc, 'strerror', exc)}): "
                "it must hold one line, user:password."
            ) from None
        return lines[0].strip() if lines else ""
    if auth:
        print(
            "qa: warning: --auth user:password is visible to other users of this machine "
            "(ps); set QA_AUTH=user:password or use --auth-file FILE instead.",
            file=sys.stderr,
        )
        return auth
    return os.environ.get("QA_AUTH")


def exposure_warning(host: str, share: bool, login: tuple[str, str] | None) -> str | None:
    """A warning when the app is reachable beyond this machine without a login."""
    if login is not None:
        return None
    if share:
        return (
            "qa: warning: --share opens a public link to this app, and it has no login: "
            "anyone with the link can read the articles and upload files. Set QA_AUTH=user:"
            "password or --auth-file FILE."
        )
    if host not in ("127.0.0.1", "localhost", "::1"):
        return (
            f"qa: warning: listening on {host} without a login: anyone who can reach this "
            "machine can read the articles and upload files. Set QA_AUTH=user:password or "
            "--auth-file FILE, or keep --host 127.0.0.1."
        )
    return None


def open_or_build(corpus: Path, index: Path, settings: Settings) -> Assistant | None:
    """The index's Assistant, building the index from the corpus first if there is none.

    None when there is neither an index nor an article yet: the app then starts empty and
    waits for uploads.
    """
    try:
        return qa.load(index, settings)
    except (qa.IndexNotFoundError, qa.IndexCorruptError) as exc:
        print(f"qa: {exc}", file=sys.stderr)
    print(f"qa: building the index {index} from {corpus} ...", file=sys.stderr, flush=True)

    def report(what: str, done: int, total: int) -> None:
        unit = "pages" if what.startswith("reading ") else "passages"
        print(f"qa: {what} {done}/{total} {unit}", file=sys.stderr, flush=True)

    try:
        stats = qa.build(corpus, index, settings, progress=report)
    except qa.EmptyCorpusError as exc:
        print(f"qa: {exc} Starting anyway: upload articles in the page.", file=sys.stderr)
        return None
    print(
        f"qa: indexed {stats.articles} articles, {stats.paragraphs} paragraphs "
        f"in {stats.seconds:.1f} s",
        file=sys.stderr,
    )
    return qa.load(index, settings)


def serve(
    corpus: str | Path = "corpus",
    index: str | Path = "index",
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: str | None = None,
    share: bool = False,
    settings: Settings | None = None,
    auth_file: str | Path | None = None,
) -> None:
    """Build the index if needed, then serve the app until interrupted.

    The login comes from `auth_file`, `auth` or QA_AUTH (see `read_auth`).
    """
    # Offline, always: no model hub lookups, no usage statistics.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    settings = settings or Settings()
    login = parse_auth(read_auth(auth, auth_file))
    if warning := exposure_warning(host, share, login):
        print(warning, file=sys.stderr)
    corpus, index = Path(corpus), index_location(index)
    assistant = open_or_build(corpus, index, settings)
    if assistant is not None:
        assistant.search("预热")  # load jieba and the model now, not on the first question
    demo = build_app(Service(corpus, index, settings, assistant))
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_MAX)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=login,
        share=bool(share),
        **launch_kwargs(),
    )
