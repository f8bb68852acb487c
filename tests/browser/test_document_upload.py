"""End to end (issue 13): upload a PDF report in headless Chromium, ask about it as a reader
would, and see the cited sentence with the page it is on."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ui.devserver import CHROMIUM, ask, launch_browser, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import make_documents as docs  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.model]  # the server embeds with m3e-small

SAMPLE_CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    tmp = tmp_path_factory.mktemp("serve-documents")
    corpus = tmp / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    with running(corpus, tmp / "index", "m3e-small", log=tmp / "serve.log") as url:
        with sync_api.sync_playwright() as pw:
            browser = launch_browser(pw)
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page.goto(url)
            page.locator("#qa-question textarea").wait_for()
            yield page
            browser.close()


def test_uploaded_pdf_is_cited_with_its_page(page, tmp_path):
    pdf = docs.report_pdf(tmp_path / "鄱阳湖报告.pdf")
    if not page.locator("#qa-upload input[type=file]").count():
        page.get_by_text("添加文章", exact=True).click()
    message = page.locator("#qa-upload-message textarea")
    page.locator("#qa-upload input[type=file]").set_input_files([str(pdf)])
    page.wait_for_function(
        "() => document.querySelector('#qa-upload-message textarea').value.includes('索引已更新')",
        timeout=180_000,
    )
    assert "已保存:鄱阳湖报告.pdf" in message.input_value()

    ask(page, docs.QUESTION, timeout=60_000)
    answer = page.locator("#qa-chat .qa-answer").last.inner_text()
    assert docs.ANSWER_FRAGMENT in answer
    card = page.locator("#qa-sources article.qa-source", has_text=docs.ANSWER_FRAGMENT).first
    assert docs.ANSWER_FRAGMENT in card.locator("mark").inner_text()
    assert card.locator(".qa-page").inner_text() == f"第{docs.ANSWER_PAGE}页"
    assert "鄱阳湖报告.pdf" in card.locator(".qa-file").inner_text()
