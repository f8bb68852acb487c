"""Screenshot of the app answering a question on the sample corpus, 1280 px wide.

python -m ui.screenshot docs/screenshot.png

The browser test (tests/browser/test_browser.py) writes docs/screenshot.png with `save` too, so the
README's picture is always of this release.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from .devserver import ask, launch_browser, running

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "赣服通集成了多少项服务?"
WIDTH = 1280  # px: the README's picture
README_PICTURE = ROOT / "docs" / "screenshot.png"


def save(page, out: Path) -> None:
    """A full-page PNG of `page` as a reader sees it: no hover effect, no focus ring."""
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default="docs/screenshot.png", help="PNG file to write")
    p.add_argument("--corpus", default=str(ROOT / "corpus"), help="articles (copied first)")
    p.add_argument("--question", default=QUESTION)
    p.add_argument("--width", type=int, default=WIDTH)
    args = p.parse_args(argv)

    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="qa-shot-") as tmp:
        corpus = Path(tmp) / "corpus"
        shutil.copytree(args.corpus, corpus)
        log = Path(tmp) / "serve.log"
        with running(corpus, Path(tmp) / "index", log=log) as url, sync_playwright() as pw:
            browser = launch_browser(pw)
            page = browser.new_page(viewport={"width": args.width, "height": 900}, locale="zh-CN")
            page.goto(url)
            ask(page, args.question)
            page.locator("#qa-sources mark").first.wait_for()
            save(page, out)
            browser.close()
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
