"""The app's page (`build_app`): the chat and its sources, the upload box, the JSON API, and
the events that tie them to the Service.

Gradio is imported only when the page is built, after the offline switches are set.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qa import Partial, QAError
from qa.answer.question import MAX_QUESTION_CHARS, cut_question

from . import render
from .errors import failed
from .service import Service
from .session import Session
from .upload import MAX_UPLOAD_BYTES, MAX_UPLOAD_FILES, UPLOAD_SUFFIXES, stage

if TYPE_CHECKING:
    import gradio as gr

TITLE = "文章问答"
DESCRIPTION = "就文章库里的文章提问:回答只摘录原文句子,每句都标出处,点击 [1] 查看原文。"
ASK_CONCURRENCY = 4  # questions answered at once; each takes ~0.1 s of CPU
WAIT = "请等上一个回答完成,问题还在输入框里,稍后再按 Enter。"
STREAM_EVERY = 0.1  # seconds between updates of a reply while the model writes it
# Gradio's copies of uploads (saved into the corpus by then): swept every hour, once a day old.
DELETE_CACHE = (3600, 86400)
FOLLOW_SECONDS = 1.0  # how often a page asks how its uploads are going


@dataclass(frozen=True)
class ChatColumn:
    """The conversation, the question box and its buttons."""

    chat: gr.Chatbot
    question: gr.Textbox
    send: gr.Button
    new_chat: gr.Button


@dataclass(frozen=True)
class SourcesColumn:
    """The source cards of the answers, and every passage the latest one retrieved."""

    sources: gr.HTML
    passages: gr.HTML


@dataclass(frozen=True)
class UploadBox:
    """「添加文章」: the files, what became of them, and the rebuild button."""

    files: gr.File
    message: gr.Textbox
    rebuild: gr.Button
    timer: gr.Timer  # runs while an upload is read


def build_app(service: Service):
    """The Gradio Blocks for `service` (not launched)."""
    import gradio as gr

    with gr.Blocks(title=TITLE, fill_width=False, delete_cache=DELETE_CACHE) as demo:
        session = gr.State(Session())  # copied for each tab
        following = gr.State([])  # this page's uploads (`UploadQueue.receive` numbers)
        gr.HTML(
            f'<header class="qa-header"><h1>{TITLE}</h1><p>{DESCRIPTION}</p></header>',
            elem_id="qa-header",
        )
        status = gr.HTML(service.status(), elem_id="qa-status")
        with gr.Row(equal_height=False, elem_id="qa-main"):
            chat = chat_column()
            sources = sources_column()
        box = upload_box(opened=service.assistant is None)
        wire_chat(service, session, chat, sources)
        wire_uploads(service, following, status, box)
        gr.api(
            api_ask(service),
            api_name="ask",
            concurrency_id="ask",
            concurrency_limit=ASK_CONCURRENCY,
        )
    return demo


# -- the layout ----------------------------------------------------------------------------


def chat_column() -> ChatColumn:
    import gradio as gr

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
    return ChatColumn(chat, question, send, new_chat)


def sources_column() -> SourcesColumn:
    import gradio as gr

    with gr.Column(scale=2, min_width=340, elem_id="qa-sources-column"):
        sources = gr.HTML(render.panel_html([]), elem_id="qa-sources", label="来源")
        with gr.Accordion("全部检索段落", open=False, elem_id="qa-passages-box"):
            passages = gr.HTML(render.passages_html(None, []), elem_id="qa-passages")
    return SourcesColumn(sources, passages)


def upload_box(opened: bool) -> UploadBox:
    """「添加文章」, open when there is nothing to answer from yet."""
    import gradio as gr

    with gr.Accordion("添加文章", open=opened, elem_id="qa-upload-box"):
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
        message = gr.Textbox(
            label="上传结果", interactive=False, lines=2, elem_id="qa-upload-message"
        )
        rebuild = gr.Button("重新建立索引", size="sm", elem_id="qa-rebuild")
        timer = gr.Timer(FOLLOW_SECONDS, active=False)
    return UploadBox(files, message, rebuild, timer)


# -- the chat ------------------------------------------------------------------------------


def wire_chat(service: Service, session: gr.State, chat: ChatColumn, sources: SourcesColumn):
    import gradio as gr

    # "multiple": a question sent while a reply is written reaches respond, which says to
    # wait ("once" dropped it without a word, and 提问 raced the Enter key).
    gr.on(
        [chat.question.submit, chat.send.click],
        responder(service),
        [chat.question, session],
        [chat.question, chat.chat, sources.sources, sources.passages],
        api_visibility="private",
        concurrency_id="ask",
        concurrency_limit=ASK_CONCURRENCY,
        show_progress="minimal",
        trigger_mode="multiple",
    )
    # A reply still being written when 新对话 is pressed writes nothing more: it checks
    # Session.generation. Not cancels=[asking]: Gradio closes the reply's generator only
    # between two of its steps, and 新对话 then waited for it, up to a minute.
    chat.chat.clear(
        lambda s: new_conversation(s)[1:3],
        session,
        [sources.sources, sources.passages],
        api_visibility="private",
    )
    chat.new_chat.click(
        new_conversation,
        session,
        [chat.chat, sources.sources, sources.passages, chat.question],
        api_visibility="private",
    )


def responder(service: Service):
    """The handler of Enter and 提问: `respond(question, session)`, a generator of the
    (question box, chat, sources, passages) updates."""
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
            yield from answer(service, question, session, generation)
        finally:
            session.finish(generation)

    return respond


def answer(service: Service, question: str, session: Session, generation: int):
    """The updates of one reply, written for conversation `generation` of `session`."""
    import gradio as gr

    earlier = session.chat()  # sent in full once; Gradio sends a stream's updates as diffs
    asked = {"role": "user", "content": render.user_html(question)}
    yield "", [*earlier, asked], gr.skip(), gr.skip()
    shown_at = 0.0
    try:
        for item in service.stream_turn(question, session.asked + 1, session.history):
            if generation != session.generation:
                yield as_now(session)
                return
            if isinstance(item, Partial):
                # A reply written a character at a time is shown at most 10 times a
                # second, not once per character. The box is left alone: the next
                # question may be being typed into it.
                if time.monotonic() - shown_at < STREAM_EVERY:
                    continue
                shown_at = time.monotonic()
                partial = earlier + render.pending_messages(question, item.text)
                yield gr.skip(), partial, gr.skip(), gr.skip()
                continue
            rendered = item
    except Exception as exc:
        if generation != session.generation:
            yield as_now(session)
            return
        if isinstance(exc, QAError):
            gr.Warning(str(exc), title="提示")
        else:  # a bug: one line on the page, the traceback in the log
            gr.Warning(failed("回答失败", exc), title="提示")
        # Off the page, streamed text and all; the question back in the box, to ask again.
        yield question, earlier, gr.skip(), gr.skip()
        return
    if not session.add(generation, rendered.turn, rendered.answer):
        yield as_now(session)
        return
    yield (
        gr.skip(),
        session.chat(),
        render.panel_html(session.turns),
        render.passages_html(rendered.answer, rendered.terms),
    )


def as_now(session: Session):
    """The chat as it is now, written last by a reply that finds 新对话 was pressed meanwhile:
    Gradio sends a reply's last update again when it ends (the old turns came back)."""
    import gradio as gr

    return gr.skip(), session.chat(), gr.skip(), gr.skip()


def new_conversation(session: Session):
    session.reset()
    return [], render.panel_html([]), render.passages_html(None, []), ""


# -- the uploads ---------------------------------------------------------------------------


def wire_uploads(service: Service, following: gr.State, status: gr.HTML, box: UploadBox):
    import gradio as gr

    def add(paths: list[str] | None, following: list[int]):
        # The files are taken in and the page answered at once; they are read and indexed
        # in the background, and `follow` shows how that goes (reading can take minutes).
        try:
            number = service.uploads.receive(upload_pairs(paths))
        finally:
            remove_uploads(paths)  # kept in the corpus folder by now, or refused
        # this page's uploads still under way, and this one
        following = [*service.uploads.report(following).pending, number]
        report = service.uploads.report(following)
        return None, report.text, service.status(), following, gr.Timer(active=bool(report.pending))

    def follow(following: list[int]):
        report = service.uploads.report(following)
        return report.text, service.status(), gr.Timer(active=bool(report.pending))

    def rebuild(progress=gr.Progress()):  # noqa: B008
        def report(what: str, done: int, total: int) -> None:
            progress((done, total), **stage(what, "正在嵌入段落"))

        progress(0, desc="正在读取文章…")
        message = "\n".join(service.rebuild(report))
        return message, service.status()

    box.files.upload(
        add,
        [box.files, following],
        [box.files, box.message, status, following, box.timer],
        show_progress_on=[box.message, status],
        api_visibility="private",
        concurrency_id="upload",
        concurrency_limit=1,
    )
    box.timer.tick(
        follow,
        following,
        [box.message, status, box.timer],
        api_visibility="private",
        concurrency_id="follow",
        concurrency_limit=None,  # reads a few strings
    )
    box.rebuild.click(
        rebuild,
        None,
        [box.message, status],
        show_progress_on=[box.message, status],
        api_visibility="private",
        concurrency_id="build",
        concurrency_limit=1,
    )


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


# -- the JSON API --------------------------------------------------------------------------


def api_ask(service: Service):
    """The `ask` API endpoint's function (Gradio documents it from its docstring)."""
    import gradio as gr

    def ask(question: str, history: list[str] | None = None) -> dict:
        """Answer a question from the articles: text with [n] markers, citations, passages.

        `history`: the earlier questions of the conversation, oldest first; a follow-up such
        as 它有多少用户? then takes its subject from them (the answer's "searched" says how).
        """
        try:
            answered = service.ask_after(question, history or [])
        except QAError as exc:
            raise gr.Error(str(exc)) from None
        except Exception as exc:
            raise gr.Error(failed("回答失败", exc)) from None
        return answered.answer.to_dict()  # the shape of docs/usage.md, as `qa ask --json`

    return ask
