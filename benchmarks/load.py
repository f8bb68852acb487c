"""Load test of `qa serve` on loopback: concurrent clients asking through the `ask` API.

    python benchmarks/load.py                 # 8 clients x 50 questions, three rounds
    python benchmarks/load.py --clients 2 --questions 5 --model hash   # a quick look

Starts `qa serve` on a free 127.0.0.1 port over a temporary copy of the sample corpus, then
runs five rounds: the library itself in this process (threads sharing one Assistant: the
limit no server can pass on this machine), the clients through Gradio's `/ask` (its queue),
the same through the plain `POST /api/ask` beside it (ui/api.py, no queue), and both again
while `qa build` rebuilds the same index from another process again and again (an article
added each time).
Prints, per round, how many questions were answered, the errors, p50/p95 latency and
throughput, and whether the server answered from the rebuilt index afterwards without a restart.

Traffic goes to loopback only; every loop is bounded in count and time, and it stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ui.devserver import SAMPLE_QUESTIONS, running  # noqa: E402

SAMPLE_CORPUS = ROOT / "corpus"
QUESTIONS = SAMPLE_QUESTIONS
QUESTION_TIMEOUT = 120.0  # seconds one question may take before it counts as an error
ROUND_TIMEOUT = 900.0  # a whole round stops after this, finished or not
MAX_REBUILDS = 20


def new_article(n: int) -> tuple[str, str, str]:
    """(file name, text, question) of the n-th article added during the rebuild round."""
    count = 1000 + 37 * n
    text = (
        f"鄱阳湖候鸟观测{n}号站\n\n"
        f"鄱阳湖候鸟观测{n}号站今年冬天记录到白鹤{count}只,比去年增加三成。\n\n"
        f"观测{n}号站位于江西省永修县吴城镇,每年十月起有志愿者驻站值守。\n"
    )
    return f"候鸟-{n}.txt", text, f"鄱阳湖候鸟观测{n}号站今年冬天记录到多少只白鹤?"


@dataclass
class Round:
    name: str
    clients: int
    asked: int
    answered: int
    found: int
    errors: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    seconds: float
    per_second: float
    first_errors: list[str]
    rebuilds: int = 0  # `qa build` runs during the round (the rebuilding rounds)


def gradio_asker(url: str) -> Callable[[str], dict]:
    """Asks through the page's Gradio API endpoint `/ask` (Gradio's queue)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    return lambda q: client.submit(question=q, api_name="/ask").result(timeout=QUESTION_TIMEOUT)


def http_asker(url: str) -> Callable[[str], dict]:
    """Asks through `POST /api/ask` (no queue; open without a key on loopback)."""
    import httpx

    client = httpx.Client(base_url=url, timeout=QUESTION_TIMEOUT)

    def ask(question: str) -> dict:
        response = client.post("/api/ask", json={"question": question})
        response.raise_for_status()
        return response.json()

    return ask


def library_asker(index: Path) -> Callable[[str], Callable[[str], dict]]:
    """Asks the library itself in this process, one Assistant shared by the client threads:
    the capacity no server on this machine can exceed (no HTTP, no JSON, no queue)."""
    import qa

    bot = qa.load(index)
    bot.warm()
    return lambda _url: lambda q: bot.ask(q).to_dict()


def ask_round(url: str, name: str, clients: int, per_client: int, connect=gradio_asker) -> Round:
    """`clients` threads, each with its own client (`connect(url)`), asking `per_client`
    questions."""
    latencies: list[float] = []
    errors: list[str] = []
    found = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + ROUND_TIMEOUT
    ready = threading.Barrier(clients + 1)

    def client_loop(n: int) -> None:
        nonlocal found
        try:
            ask = connect(url)
        except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
            with lock:
                errors.extend([f"connect: {exc!r}"] * per_client)
            ready.wait()
            return
        ready.wait()
        for i in range(per_client):
            if time.monotonic() > stop_at:
                with lock:
                    errors.append("round timed out")
                continue
            question = QUESTIONS[(n + i) % len(QUESTIONS)]
            began = time.perf_counter()
            try:
                result = ask(question)
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors.append(f"{question}: {exc!r}")
                continue
            with lock:
                latencies.append(time.perf_counter() - began)
                found += bool(result.get("found"))

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    ready.wait()  # clients connected: time the questions only
    began = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return Round(
        name=name,
        clients=clients,
        asked=clients * per_client,
        answered=len(latencies),
        found=found,
        errors=len(errors),
        p50_ms=round(float(np.percentile(ms, 50)), 1),
        p95_ms=round(float(np.percentile(ms, 95)), 1),
        max_ms=round(float(ms.max()), 1),
        seconds=round(seconds, 1),
        per_second=round(len(latencies) / seconds, 2) if seconds else 0.0,
        first_errors=errors[:5],
    )


class Rebuilder(threading.Thread):
    """Adds an article and runs `qa build` in another process, over and over, until stopped."""

    def __init__(self, corpus: Path, index: Path, model: str):
        super().__init__()
        self.corpus, self.index, self.model = corpus, index, model
        self.stop = threading.Event()
        self.builds: list[tuple[int, float, int]] = []  # (article number, seconds, exit code)
        self.spans: list[tuple[float, float]] = []  # (began, ended) of each, perf_counter

    def during(self, began: float, ended: float) -> int:
        """How many builds ran (at least partly) between `began` and `ended`."""
        return sum(a < ended and b > began for a, b in self.spans)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set() and n < MAX_REBUILDS:
            n += 1
            name, text, _ = new_article(n)
            (self.corpus / name).write_text(text, encoding="utf-8")
            began = time.perf_counter()
            cmd = [sys.executable, "-m", "qa.cli", "build", "--corpus", str(self.corpus)]
            cmd += ["--index", str(self.index), "--model", self.model]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=ROUND_TIMEOUT)
            self.builds.append((n, time.perf_counter() - began, done.returncode))
            self.spans.append((began, time.perf_counter()))


def print_round(r: Round) -> None:
    print(
        f"{r.name:<22} {r.clients} clients x {r.asked // r.clients} questions: "
        f"answered {r.answered}/{r.asked}, errors {r.errors}, found {r.found}; "
        f"p50 {r.p50_ms:.0f} ms, p95 {r.p95_ms:.0f} ms, max {r.max_ms:.0f} ms; "
        f"{r.per_second:.1f} questions/s over {r.seconds:.1f} s"
        + (f"; {r.rebuilds} rebuilds during it" if r.rebuilds else ""),
        flush=True,
    )
    for line in r.first_errors:
        print(f"    error: {line}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--questions", type=int, default=50, help="questions per client")
    ap.add_argument("--model", default="m3e-small")
    ap.add_argument("--out", help="also write the figures here as JSON")
    args = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"

    with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
        tmp = Path(tmp)
        corpus, index = tmp / "corpus", tmp / "index"
        shutil.copytree(SAMPLE_CORPUS, corpus)
        print(f"starting qa serve ({args.model}) over a copy of {SAMPLE_CORPUS} ...", flush=True)
        with running(corpus, index, args.model, log=tmp / "serve.log") as url:
            from gradio_client import Client

            Client(url, verbose=False).predict(question=QUESTIONS[0], api_name="/ask")  # warm
            library = ask_round(
                url, "library (the limit)", args.clients, args.questions, library_asker(index)
            )
            print_round(library)
            quiet = ask_round(url, "Gradio /ask", args.clients, args.questions)
            print_round(quiet)
            plain = ask_round(url, "POST /api/ask", args.clients, args.questions, http_asker)
            print_round(plain)

            rebuilder = Rebuilder(corpus, index, args.model)
            rebuilder.start()
            began = time.perf_counter()
            busy = ask_round(url, "Gradio, rebuilding", args.clients, args.questions)
            middle = time.perf_counter()
            plain_busy = ask_round(
                url, "/api/ask, rebuilding", args.clients, args.questions, http_asker
            )
            ended = time.perf_counter()
            rebuilder.stop.set()
            rebuilder.join(timeout=ROUND_TIMEOUT)
            busy.rebuilds = rebuilder.during(began, middle)
            plain_busy.rebuilds = rebuilder.during(middle, ended)
            print_round(busy)
            print_round(plain_busy)
            built = [b for b in rebuilder.builds if b[2] == 0]
            print(
                f"rebuilds by `qa build` during those two rounds: {len(rebuilder.builds)} "
                f"({len(built)} succeeded, "
                f"{', '.join(f'{s:.1f}' for _, s, _ in rebuilder.builds)} s each)",
                flush=True,
            )
            # The server notices the last rebuild on a question at most a second later.
            last = rebuilder.builds[-1][0] if rebuilder.builds else 0
            switched = False
            client = Client(url, verbose=False)
            for _ in range(30):  # bounded: about 30 s at most
                if last and client.predict(question=new_article(last)[2], api_name="/ask")["found"]:
                    switched = True
                    break
                time.sleep(1)
            print(f"answers from the last rebuilt index without a restart: {switched}")
        if args.out:
            figures = {
                "model": args.model,
                "rounds": [asdict(r) for r in (library, quiet, plain, busy, plain_busy)],
                "rebuilds": rebuilder.builds,
                "switched": switched,
            }
            Path(args.out).write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
    rounds = (library, quiet, plain, busy, plain_busy)
    ok = all(r.errors == 0 for r in rounds) and switched
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
