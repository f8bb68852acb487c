"""Run `qa serve` in a subprocess and drive it with headless Chromium (screenshots, e2e tests)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"  # the system browser: Playwright never downloads one
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
START_TIMEOUT = 180.0  # seconds: the first start builds the index with the real model


# Ten questions about the sample corpus, the last one off-topic: the browser latency test
# and the load benchmark ask these.
SAMPLE_QUESTIONS = (
    "赣服通集成了多少项服务?",
    "赣服通有多少用户?",
    "李克强总理哪天来到江西省社保中心?",
    "赣服通提供多少种电子证照?",
    "江西在网上政务服务能力评估中排名第几?",
    "中部崛起是哪一年首次提出的?",
    "数旗智酷认为李克强总理对赣服通的点赞可以从几个方面解读?",
    "华为在东莞的大单是多少钱?",
    "澳大利亚借鉴了哪个国家的模式?",
    "北京烤鸭怎么做?",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"qa serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (a login page says 401 to some routes)
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"qa serve did not answer at {url} in {timeout:.0f} s:\n{log.read_text()}")


@contextlib.contextmanager
def running(
    corpus: Path,
    index: Path,
    model: str = "m3e-small",
    *,
    log: Path,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """`qa serve` on a free port until the block ends; yields its URL. Output goes to `log`."""
    port = free_port()
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--corpus", str(corpus), "--index", str(index)]
    cmd += ["--port", str(port), "--model", model, *extra_args]
    url = f"http://127.0.0.1:{port}/"
    root = Path(__file__).resolve().parent.parent
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    full_env.update(env or {})
    with open(log, "wb") as out:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=root, env=full_env
        )
    try:
        wait_until_up(url, process, log, START_TIMEOUT)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch_browser(playwright):
    """Headless system Chromium."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def ask(page, question: str, timeout: float = 30_000) -> None:
    """Type a question, press Enter and wait until its answer is shown."""
    shown = "document.querySelectorAll('#qa-chat .qa-answer, #qa-chat .qa-none').length"
    before = page.evaluate(shown)
    box = page.locator("#qa-question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(f"{shown} > {before}", timeout=timeout)
