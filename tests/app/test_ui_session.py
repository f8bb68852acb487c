"""A browser tab's conversation under hostile use, without a browser: huge input, 新对话 and
typing while a reply streams, a second question mid-stream, thousands of turns.

`Page` runs the handlers build_app wires the way Gradio does, keeping each component's value
(a gr.State's too) from one event to the next, so a test can stop a streaming reply halfway,
press another button, then let the reply finish."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import pickle
import warnings
from collections.abc import Iterator

import pytest
from fake_llm import FakeLLM
from gradio.utils import is_prop_update

import qa
from qa.answer.question import MAX_QUESTION_CHARS
from ui.app import launch_kwargs
from ui.page import build_app
from ui.render import TURNS_SHOWN
from ui.service import Service

HUGE = "赣服通集成了多少项服务?" + "请详细说明" * 2_000_000  # 10 million characters


class Page:
    """One browser tab: the app's event handlers run one update at a time."""

    def __init__(self, service: Service):
        self.demo = build_app(service)
        self.values: dict[int, object] = {}
        self.warnings: list[str] = []

    def element(self, elem_id: str):
        return next(b for b in self.demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)

    def value(self, elem_id: str):
        return self._value(self.element(elem_id))

    def _value(self, block):
        if block._id not in self.values:
            self.values[block._id] = copy.deepcopy(block.value)  # a new tab's value
        return self.values[block._id]

    def type(self, text: str) -> None:
        self.values[self.element("qa-question")._id] = text

    def run(self, elem_id: str, event: str) -> Iterator[None]:
        """The handler of `event` on `elem_id`, one written update per step."""
        target = self.element(elem_id)._id
        fn = next(f for f in self.demo.fns.values() if (target, event) in f.targets and f.fn)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn.fn(*(self._value(b) for b in fn.inputs))
            updates = result if inspect.isgenerator(result) else iter([result])
            update = None
            for update in updates:
                self._write(fn, update)
                yield
            self.warnings += [str(w.message) for w in caught]
        if inspect.isgenerator(result) and update is not None:
            # Gradio sends a generator's last update again when it ends (handle_streaming_diffs)
            self._write(fn, update)

    def _write(self, fn, update) -> None:
        update = update if len(fn.outputs) > 1 else (update,)
        for block, value in zip(fn.outputs, update, strict=True):
            if not is_prop_update(value):  # gr.skip() leaves the value as it is
                self.values[block._id] = value

    def submit(self, question: str) -> None:
        self.type(question)
        for _ in self.run("qa-question", "submit"):
            pass

    def new_conversation(self) -> None:
        for _ in self.run("qa-new-chat", "click"):
            pass

    @property
    def chat_html(self) -> str:
        return "".join(m["content"] for m in self.value("qa-chat"))


def streaming_until_shown(page: Page, question: str) -> Iterator[None]:
    """Submit `question` and stop once part of the model's reply is on the page."""
    page.type(question)
    reply = page.run("qa-question", "submit")
    for _ in reply:
        if "qa-streaming" in page.chat_html:
            return reply
    raise AssertionError("the reply never streamed")


@pytest.fixture(scope="module")
def llm():
    with FakeLLM(pause=0.02) as server:  # the Page steps through updates itself
        yield server


@pytest.fixture
def service(bot: qa.Assistant, built_index) -> Service:
    return Service(built_index.parent / "corpus", built_index, bot.settings, bot)


@pytest.fixture
def streaming(bot: qa.Assistant, built_index, llm: FakeLLM) -> Service:
    settings = dataclasses.replace(bot.settings, llm_url=llm.url, llm_model="faithful")
    model = qa.Assistant(bot.index, settings, bot.embedder)
    return Service(built_index.parent / "corpus", built_index, settings, model)


# -- input cut at the server's edge ------------------------------------------------------


def test_a_huge_question_through_the_api_echoes_at_most_the_limit(service: Service):
    ask = {fn.api_name: fn for fn in build_app(service).fns.values()}["ask"].fn
    for history in ([], [HUGE], [HUGE] * 3):
        data = ask(HUGE, history)
        assert data["question"] == HUGE[:MAX_QUESTION_CHARS]
        assert len(data["question"]) <= MAX_QUESTION_CHARS
        assert len(data["searched"]) <= MAX_QUESTION_CHARS
        assert len(json.dumps(data, ensure_ascii=False)) < 50_000  # was 120 MB


def test_hostile_api_history_is_cut_and_a_follow_up_still_works(service: Service):
    ask = {fn.api_name: fn for fn in build_app(service).fns.values()}["ask"].fn
    junk = [{"q": ["赣服通" * 10**6]}, [["嵌套"]], 3, None, "", "？？", "很" * 10**7]
    data = ask("它有多少用户?", junk * 1_000 + ["赣服通集成了多少项服务?"])
    assert data["searched"] == "赣服通有多少用户?"
    data = ask("它有多少用户?", junk)  # nothing in it to take a subject from
    assert data["searched"] == "它有多少用户?" and len(data["question"]) < 10


def test_a_huge_question_typed_into_the_page_is_cut(service: Service):
    page = Page(service)
    page.submit(HUGE)  # the page's max_length holds only in the browser
    chat = page.value("qa-chat")
    assert len(chat) == 2 and HUGE[:MAX_QUESTION_CHARS] in chat[0]["content"]
    assert len(page.chat_html) < 20_000
    assert page.value("qa-question") == ""


# -- while a reply streams ---------------------------------------------------------------


def test_new_conversation_pressed_mid_stream_wins(streaming: Service):
    page = Page(streaming)
    page.submit("赣服通集成了多少项服务?")
    reply = streaming_until_shown(page, "它有多少用户?")
    page.new_conversation()
    for _ in reply:  # the reply finishes after 新对话
        pass
    assert page.value("qa-chat") == []
    assert "qa-source" not in page.value("qa-sources")
    page.submit("它有多少用户?")  # nothing to refer back to any more
    assert "按“" not in page.chat_html
    assert len(page.value("qa-chat")) == 2


def test_text_typed_mid_stream_stays_in_the_box(streaming: Service):
    page = Page(streaming)
    reply = streaming_until_shown(page, "赣服通有多少用户?")
    assert page.value("qa-question") == ""  # taken once, when asked
    page.type("地铁1号线共设")
    for _ in reply:
        pass
    assert page.value("qa-question") == "地铁1号线共设"
    assert "900万用户" in page.chat_html


def test_a_question_submitted_mid_stream_is_told_to_wait(streaming: Service):
    page = Page(streaming)
    reply = streaming_until_shown(page, "赣服通有多少用户?")
    page.submit("地铁1号线共设多少座车站?")
    assert any("请等上一个回答完成" in w for w in page.warnings)
    assert page.value("qa-question") == "地铁1号线共设多少座车站?"  # kept, to ask again
    for _ in reply:
        pass
    assert "24座车站" not in page.chat_html and "900万用户" in page.chat_html
    page.submit(page.value("qa-question"))  # once the reply is done, it is answered
    assert "24座车站" in page.chat_html
    ask = next(f for f in page.demo.fns.values() if f.name == "respond")
    assert ask.trigger_mode == "multiple"  # else the browser drops it without a word


# -- how much a session keeps ------------------------------------------------------------


def test_a_long_conversation_keeps_the_last_turns_and_says_so(service: Service):
    page = Page(service)
    questions = ["赣服通集成了多少项服务?", "地铁1号线共设多少座车站?", "马拉松男子全程冠军是谁?"]
    for n in range(TURNS_SHOWN + 5):
        page.submit(questions[n % 3])
    chat = page.value("qa-chat")
    assert sum(m["role"] == "user" for m in chat) == TURNS_SHOWN
    assert "较早的 5 个问题已不在页面上" in chat[0]["content"]
    assert f'id="src-{TURNS_SHOWN + 5}-1"' in page.value("qa-sources")  # numbering goes on
    kept = sum(len(pickle.dumps(v)) for v in page.values.values() if not isinstance(v, str))
    for _ in range(3 * TURNS_SHOWN):  # ... however long it goes on
        page.submit(questions[0])
    more = sum(len(pickle.dumps(v)) for v in page.values.values() if not isinstance(v, str))
    assert more < 1.2 * kept
    for _ in range(10):  # 新对话 again and again
        page.new_conversation()
        page.submit(questions[1])
    assert len(page.value("qa-chat")) == 2


def test_the_server_keeps_a_bounded_number_of_tabs():
    # Each tab keeps up to ~0.2 MB (measured on the sample corpus, flat after TURNS_SHOWN turns);
    # Gradio keeps 10,000 tabs unless told otherwise.
    assert launch_kwargs()["state_session_capacity"] <= 1000
