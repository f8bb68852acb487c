"""End to end: a conversation with a follow-up and a generated, streamed, verified answer, in
headless Chromium, against `qa serve --llm` and a scripted chat-completions server on loopback."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ui.devserver import CHROMIUM, ask, launch_browser, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_llm import FakeLLM  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"  # docs/conversation.png is a copy of this picture


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def url(tmp_path_factory, llm) -> str:
    tmp = tmp_path_factory.mktemp("serve-llm")
    shutil.copytree(ROOT / "corpus", tmp / "corpus")
    extra = ("--llm", llm.url, "--llm-model", "partly-slowly")
    with running(tmp / "corpus", tmp / "index", log=tmp / "serve.log", extra_args=extra) as u:
        yield u


@pytest.fixture
def page(url):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch_browser(pw)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        p = context.new_page()
        p.goto(url)
        p.locator("#qa-question textarea").wait_for()
        yield p
        browser.close()


def test_follow_up_with_a_streamed_verified_answer(page):
    ask(page, "赣服通集成了多少项服务?")
    box = page.locator("#qa-question textarea")
    box.fill("它有多少用户?")
    box.press("Enter")
    # The reply appears while the model writes it, marked as not yet checked ...
    page.locator("#qa-chat .qa-streaming").first.wait_for(timeout=30_000)
    assert "核对" in page.locator("#qa-chat .qa-checking").first.inner_text()
    # ... and is replaced by the verified answer when complete.
    page.wait_for_function(
        "document.querySelectorAll('#qa-chat .qa-answer').length >= 2", timeout=30_000
    )
    last = page.locator("#qa-chat .message-wrap [data-testid='bot']").last
    text = last.inner_text()
    assert "按“赣服通有多少用户?”理解" in text
    assert "900万用户" in page.locator("#qa-chat .qa-answer").last.inner_text()
    assert "模型生成" in text and "未能在原文中核实" in text
    struck = page.locator("#qa-chat .qa-unsupported del").last.inner_text()
    assert struck == "赣服通是全国用户最多的政务平台。"
    assert page.locator("#qa-chat .qa-streaming").count() == 0
    assert "900万用户" in page.locator("#qa-sources mark").first.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "conversation.png"), full_page=True)

    # 新对话: the pronoun has nothing to refer to any more.
    page.get_by_role("button", name="新对话").click()
    page.wait_for_function("document.querySelectorAll('#qa-chat .qa-answer').length === 0")
    ask(page, "它有多少用户?")
    assert "按“" not in page.locator("#qa-chat").inner_text()


def test_ask_endpoint_takes_the_history(url, llm):
    from gradio_client import Client

    client = Client(url, verbose=False)
    result = client.predict(
        question="它有多少用户?", history=["赣服通集成了多少项服务?"], api_name="/ask"
    )
    assert result["searched"] == "赣服通有多少用户?"
    assert result["generated"] is True and "900万用户" in result["text"]
    assert result["unsupported"] == ["赣服通是全国用户最多的政务平台。"]
    llm.requests.clear()
    refused = client.predict(question="北京烤鸭怎么做?", api_name="/ask")
    assert refused["found"] is False and llm.requests == []


def test_while_a_reply_streams(page):
    # Each streamed update cleared the box, a second question was dropped without a word, and
    # the reply's end brought the turns back after 新对话 (Gradio re-sends a reply's last update).
    ask(page, "赣服通集成了多少项服务?")
    box = page.locator("#qa-question textarea")
    box.fill("它有多少用户?")
    box.press("Enter")
    page.locator("#qa-chat .qa-streaming").first.wait_for(timeout=30_000)
    box.fill("南昌")
    box.press("Enter")
    page.locator(".toast-body", has_text="请等上一个回答完成").first.wait_for(timeout=10_000)
    page.wait_for_timeout(1_500)  # another piece of the reply is shown meanwhile
    assert box.input_value() == "南昌"
    page.get_by_role("button", name="新对话").click()
    asked = "document.querySelectorAll('#qa-chat .qa-question').length"
    page.wait_for_function(f"{asked} === 0", timeout=10_000)
    page.wait_for_timeout(6_000)  # the model has finished the reply by now (1 s a piece)
    assert page.evaluate(asked) == 0
    ask(page, "它有多少用户?")  # nothing to refer back to
    assert "按“" not in page.locator("#qa-chat").inner_text()
