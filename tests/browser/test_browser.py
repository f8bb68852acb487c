"""End to end: `qa serve` with the real model on the sample corpus, driven by headless Chromium.

Tests run in file order: the first ones see the sample corpus alone, the upload tests add
articles to the server's copy of it.
"""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ui.devserver import CHROMIUM, SAMPLE_QUESTIONS, ask, launch_browser, running
from ui.screenshot import README_PICTURE, WIDTH, save

pytestmark = [pytest.mark.browser, pytest.mark.model]  # the server embeds with m3e-small

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CORPUS = ROOT / "corpus"
ARTIFACTS = ROOT / "artifacts"

QUESTION = "赣服通集成了多少项服务?"
NOT_FOUND = "资料中没有找到相关内容"
LATENCY_QUESTIONS = SAMPLE_QUESTIONS
# A user who presses Enter and waits longer than this thinks the page is broken. Generous on
# purpose (a warm answer takes well under a second): the figures belong in the benchmarks.
ANSWER_WITHIN_MS = 15_000
NEW_ARTICLE = (
    "# 鄱阳湖候鸟观测站\n\n"
    "鄱阳湖候鸟观测站今年冬天记录到白鹤4128只,比去年增加三成。\n\n"
    "观测站位于江西省永修县吴城镇,每年十月起有志愿者驻站值守。\n"
)
SCRIPT_ARTICLE = (
    "暗号测试\n\n"
    "这篇文章的暗号是青蛙跳舞<script>alert(1)</script>以及<img src=x onerror=alert(1)>结尾。\n"
)


# -- fixtures: one server per module, a fresh page per test --------------------


@dataclass
class Server:
    url: str
    corpus: Path
    log: Path


@dataclass
class Watched:
    """A page plus what it did: dialogs it opened, requests to other hosts."""

    page: object
    dialogs: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    tmp = tmp_path_factory.mktemp("serve")
    corpus = tmp / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    log = tmp / "serve.log"
    # No index yet: the server builds it first, as `qa serve` does on a fresh checkout.
    with running(corpus, tmp / "index", "m3e-small", log=log) as url:
        yield Server(url, corpus, log)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = launch_browser(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def watched(browser, server) -> Watched:
    context = browser.new_context(viewport={"width": WIDTH, "height": 900}, locale="zh-CN")
    page = context.new_page()
    seen = Watched(page)

    def on_dialog(dialog) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_request(request) -> None:
        host = urlparse(request.url).hostname
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and host != "127.0.0.1":
            seen.outside.append(request.url)

    page.on("dialog", on_dialog)
    page.on("request", on_request)
    page.goto(server.url)
    page.locator("#qa-question textarea").wait_for()
    yield seen
    context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# -- tests ------------------------------------------------------------------------------


def answers(page) -> list[str]:
    return page.locator("#qa-chat .qa-answer, #qa-chat .qa-none").all_inner_texts()


def upload(page, files: list[Path], articles: int) -> str:
    """Upload through the page's file input; wait for the report and the status line."""
    if not page.locator("#qa-upload input[type=file]").count():
        page.get_by_text("添加文章", exact=True).click()
    message = page.locator("#qa-upload-message textarea")
    before = message.input_value()
    page.locator("#qa-upload input[type=file]").set_input_files([str(f) for f in files])
    page.wait_for_function(
        "before => document.querySelector('#qa-upload-message textarea').value !== before",
        arg=before,
        timeout=120_000,
    )
    page.locator(f"#qa-status [data-articles='{articles}']").wait_for()
    return message.input_value()


def test_answer_cites_and_highlights_its_source(watched, artifacts):
    page = watched.page
    assert page.title() == "文章问答"
    ask(page, QUESTION)
    assert "6697项" in answers(page)[-1]
    marks = page.locator("#qa-sources mark").all_inner_texts()
    assert any("6697项" in m for m in marks)
    card = page.locator("#src-1-1")
    assert "第2段" in card.inner_text() and "检索分" in card.inner_text()
    save(page, artifacts / "answered.png")
    save(page, README_PICTURE)  # the README's picture, of this release
    png = README_PICTURE.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == WIDTH

    # Clicking [1] in the answer brings its source card into view.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.locator("#qa-chat a.qa-cite", has_text="[1]").first.click()
    page.wait_for_function("location.hash === '#src-1-1'")
    box = card.bounding_box()
    assert 0 <= box["y"] < page.viewport_size["height"]
    assert watched.outside == [], "the page must not load anything from the internet"


def test_out_of_corpus_question_says_nothing_was_found(watched):
    ask(watched.page, "北京烤鸭怎么做?")
    assert NOT_FOUND in answers(watched.page)[-1]
    assert watched.page.locator("#qa-sources mark").count() == 0


def test_earlier_answers_keep_their_sources(watched):
    page = watched.page
    ask(page, QUESTION)
    ask(page, "李克强总理哪天来到江西省社保中心?")
    page.locator("#qa-chat a[href='#src-1-1']").click()
    assert page.locator("#src-1-1").is_visible()  # its folded section opened
    assert "6697项" in page.locator("#src-1-1 mark").inner_text()


def test_ask_endpoint_through_gradio_client(server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    result = client.predict(question=QUESTION, api_name="/ask")
    assert result["found"] is True and "[1]" in result["text"]
    first = result["citations"][0]
    assert first["n"] == 1 and "6697项" in first["sentence"]
    assert first["sentence"] in result["text"] and first["end"] > first["start"]
    assert result["passages"] and "score" in result["passages"][0]
    assert client.predict(question="北京烤鸭怎么做?", api_name="/ask")["found"] is False
    with pytest.raises(Exception, match="question is empty"):
        client.predict(question="  ", api_name="/ask")


def test_ui_answer_latency_every_answer_appears_within_seconds(watched, artifacts):
    """Enter to answer on screen, warm server: each answer within ANSWER_WITHIN_MS.

    The median is printed and written to artifacts/ui_latency.json, not asserted."""
    page = watched.page
    ask(page, QUESTION)  # warm-up, not counted
    page.evaluate(
        """() => {
        window.qaTimes = [];
        const box = document.querySelector('#qa-question textarea');
        box.addEventListener('keydown', e => {
            if (e.key === 'Enter') window.qaStart = performance.now();
        }, true);
        const shown = () =>
            document.querySelectorAll('#qa-chat .qa-answer, #qa-chat .qa-none').length;
        let seen = shown();
        new MutationObserver(() => {
            const n = shown();
            if (n > seen) { seen = n; window.qaTimes.push(performance.now() - window.qaStart); }
        }).observe(document.querySelector('#qa-chat'), {childList: true, subtree: true});
    }"""
    )
    for question in LATENCY_QUESTIONS:
        ask(page, question)
    times = page.evaluate("window.qaTimes")
    assert len(times) == len(LATENCY_QUESTIONS)
    slow = [
        (q, t)
        for q, t in zip(LATENCY_QUESTIONS, times, strict=True)
        if not 0 < t < ANSWER_WITHIN_MS
    ]
    assert not slow, f"answers not on screen within {ANSWER_WITHIN_MS} ms: {slow}"
    median = statistics.median(times)
    print(f"\nUI answer latency median: {median:.0f} ms over {len(times)} questions")
    report = {
        "median_ms": round(median, 1),
        "times_ms": [round(t, 1) for t in times],
        "questions": list(LATENCY_QUESTIONS),
        "what": "Enter pressed to answer shown, headless Chromium, warm server, sample corpus",
    }
    (artifacts / "ui_latency.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8"
    )


def test_uploaded_article_is_answered_after_the_rebuild(watched, tmp_path):
    page = watched.page
    article = tmp_path / "鄱阳湖候鸟.md"
    article.write_text(NEW_ARTICLE, encoding="utf-8")
    rejected = tmp_path / "notes.exe"
    rejected.write_text("x", encoding="utf-8")
    message = upload(page, [article, rejected], articles=2)
    assert "已保存:鄱阳湖候鸟.md" in message and "不支持 .exe" in message
    assert "新嵌入 2 个段落" in message  # only the new article was embedded
    ask(page, "鄱阳湖候鸟观测站今年冬天记录到多少只白鹤?")
    assert "4128只" in answers(page)[-1]
    assert any("4128只" in m for m in page.locator("#qa-sources mark").all_inner_texts())

    again = upload(page, [article], articles=2)
    assert "已有同名文件" in again


def test_article_with_markup_is_shown_as_text_and_runs_nothing(watched, server, tmp_path):
    page = watched.page
    article = tmp_path / "evil.txt"
    article.write_text(SCRIPT_ARTICLE, encoding="utf-8")
    upload(page, [article], articles=3)
    ask(page, "这篇文章的暗号是什么?")
    page.wait_for_timeout(500)  # give an injected handler the chance to fire
    assert watched.dialogs == []
    assert "<script>alert(1)</script>" in answers(page)[-1]
    sources = page.locator("#qa-sources").inner_text()
    assert "<script>alert(1)</script>" in sources and "<img src=x onerror=alert(1)>" in sources
    assert page.locator("#qa-chat img[src=x], #qa-sources img, #qa-sources script").count() == 0
    assert "gradio.live" not in server.log.read_text()  # never a public share link


def test_narrow_screen_puts_sources_below_the_chat(watched):
    page = watched.page
    page.set_viewport_size({"width": 390, "height": 844})
    ask(page, QUESTION)
    chat = page.locator("#qa-chat-column").bounding_box()
    sources = page.locator("#qa-sources-column").bounding_box()
    assert sources["y"] >= chat["y"] + chat["height"] - 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_login_is_required_with_qa_auth(tmp_path):
    from gradio_client import Client

    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    env = {"QA_AUTH": "ann:secret"}
    with running(corpus, tmp_path / "index", "hash", log=tmp_path / "log", env=env) as url:
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do
            Client(url, verbose=False)
        client = Client(url, auth=("ann", "secret"), verbose=False)
        assert "found" in client.predict(question=QUESTION, api_name="/ask")
