"""Generated answers from any OpenAI-compatible model, every sentence checked (verify.py).

Off unless `Settings.llm_url` is set (QA_LLM_URL, `--llm URL`). The `openai` client is
imported only then (`pip install qa-zh[llm]`). The extractive answer comes first: a refused
question never reaches the model, and whenever the model fails, times out, returns garbage
or writes nothing that can be verified, the extractive answer is returned with a one-line
note saying why.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence

from ..types import Answer
from .verify import MARKER, Source, verify

TURNS_IN_PROMPT = 3  # earlier turns the model sees
SOURCES = 6  # cited sentences first, then the next best ones
PARAGRAPH_CHARS = 600  # of each source's paragraph, around the sentence
MAX_REPLY_CHARS = 4000  # a longer stream is cut: an answer, not an essay
MAX_QUESTION_CHARS = 1000  # of each question in the prompt, as qa/assistant.py cuts them

SYSTEM = (
    "你是一个严谨的问答助手。只根据下面编号的原文回答用户的问题,用中文,简洁。"
    "每一句话后面都要用 [编号] 标出它依据的原文,例如:……[1]。"
    "不要使用原文以外的任何知识;原文没有的内容不要写。"
)

NOTES = {
    "timeout": "生成回答超时,以下为原文摘录。",
    "error": "生成回答失败({}),以下为原文摘录。",
    "garbage": "模型返回的内容无法读取,以下为原文摘录。",
    "unverified": "模型的回答未能在原文中核实,以下为原文摘录。",
    "missing": "生成回答需要 openai 库:pip install 'qa-zh[llm]';以下为原文摘录。",
}


BAD_URL = "模型地址无效,应为 http:// 或 https:// 开头的地址"


class ModelFailure(Exception):
    """The model could not be used; `kind` is a key of NOTES."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(detail or kind)
        self.kind = kind
        self.detail = detail


def sources_of(answer: Answer, paragraph) -> list[Source]:
    """The numbered sources the model reads: the cited sentences, then the related ones.

    `paragraph(citation)` gives the full text of a citation's paragraph.
    """
    out = []
    for n, c in enumerate((*answer.citations, *answer.more)[:SOURCES], 1):
        text = paragraph(c)
        lo = max(0, c.start - PARAGRAPH_CHARS // 2)
        out.append(Source(n, c.sentence, text[lo : lo + PARAGRAPH_CHARS], c.title))
    return out


def messages(
    question: str, sources: Sequence[Source], turns: Sequence[tuple[str, Answer]] = ()
) -> list[dict]:
    """The chat-completions messages: rules, recent turns, numbered sources, the question."""
    listed = "\n\n".join(
        f"[{s.n}] {s.sentence}\n(出自《{s.title}》的段落:{s.paragraph})" for s in sources
    )
    out = [{"role": "system", "content": SYSTEM}]
    for asked, answer in list(turns)[-TURNS_IN_PROMPT:]:
        out.append({"role": "user", "content": asked[:MAX_QUESTION_CHARS]})
        out.append({"role": "assistant", "content": MARKER.sub("", answer.text)})
    question = question[:MAX_QUESTION_CHARS]  # as searched (qa/assistant.py cuts it too)
    out.append({"role": "user", "content": f"原文:\n{listed}\n\n问题:{question}"})
    return out


def stream_reply(
    url: str, model: str, msgs: list[dict], timeout: float, key: str | None = None
) -> Iterator[str]:
    """The reply's text as it streams. Raises ModelFailure.

    `timeout` bounds the whole reply, not each read: the HTTP exchange runs in a worker
    thread and the reply is abandoned at the deadline, whatever the server does (SSE
    comments or single bytes trickled forever, headers that never end). Redirects are not
    followed: the question and the sources go to the configured address or nowhere.
    """
    try:
        import httpx
        import openai
    except ImportError:
        raise ModelFailure("missing") from None
    deadline = time.monotonic() + timeout
    if not re.match(r"https?://[^\s/?#]+(?:[/?#]\S*)?$", url or "", re.IGNORECASE):
        raise ModelFailure("error", BAD_URL)  # never api.openai.com's default, never file://
    try:
        client = openai.OpenAI(
            base_url=url, api_key=key or os.environ.get("QA_LLM_KEY") or "none",
            timeout=timeout, max_retries=0,
            http_client=httpx.Client(timeout=timeout, follow_redirects=False),
        )  # fmt: skip
    except Exception:  # httpx.InvalidURL and the like: the message may quote the URL
        raise ModelFailure("error", BAD_URL) from None
    pieces: queue.Queue = queue.Queue()
    done = threading.Event()
    opened: list = []

    def pump() -> None:
        try:
            stream = client.chat.completions.create(
                model=model or "default", messages=msgs, stream=True, temperature=0
            )
            opened.append(stream)
            for part in stream:
                if done.is_set():
                    break
                pieces.put(("part", part))
            pieces.put(("end", None))
        except Exception as exc:
            pieces.put(("error", exc))
        finally:
            _close(opened, client)

    threading.Thread(target=pump, name="qa-llm", daemon=True).start()
    try:
        length = 0
        while True:
            try:
                kind, item = pieces.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise ModelFailure("timeout") from None
            if kind == "end":
                return
            if kind == "error":
                raise item
            choices = getattr(item, "choices", None)
            if not choices:
                continue
            delta = getattr(choices[0].delta, "content", None) or ""
            if not isinstance(delta, str):
                raise ModelFailure("garbage")
            delta = delta[: MAX_REPLY_CHARS - length]
            length += len(delta)
            if delta:
                yield delta
            if length >= MAX_REPLY_CHARS:
                return
    except ModelFailure:
        raise
    except openai.APITimeoutError:
        raise ModelFailure("timeout") from None
    except openai.APIStatusError as exc:
        raise ModelFailure("error", f"HTTP {exc.status_code}") from None
    except openai.APIConnectionError:
        raise ModelFailure("error", "连接不上模型服务") from None
    except Exception as exc:  # a body that is not the protocol: JSON or SSE errors
        raise ModelFailure("garbage", type(exc).__name__) from None
    finally:
        done.set()
        # Closing from here unblocks the worker at the server's next byte at the latest; in a
        # thread of its own, so a close that waits on the worker never delays the answer.
        threading.Thread(target=_close, args=(opened, client), daemon=True).start()


def _close(opened: list, client) -> None:
    for thing in (*opened, client):
        try:
            thing.close()
        except Exception:  # already closed, or closed by the other thread
            pass


def fallback(answer: Answer, kind: str, detail: str = "") -> Answer:
    """The extractive answer, with the one-line note of why the model's was not used."""
    note = NOTES[kind].format(detail) if "{}" in NOTES[kind] else NOTES[kind]
    return dataclasses.replace(answer, generated=False, note=note)


def generate(
    answer: Answer,
    paragraph,
    url: str,
    model: str,
    timeout: float,
    tokenizer,
    turns: Sequence[tuple[str, Answer]] = (),
) -> Iterator[str | Answer]:
    """Stream a generated answer: the reply's text so far (str) while it streams, then the
    final, verified Answer (or the extractive one, with a note). A refused question is
    returned at once, without calling the model."""
    if not answer.found:
        yield answer
        return
    sources = sources_of(answer, paragraph)
    msgs = messages(answer.searched, sources, turns)
    began = time.perf_counter()
    text = ""
    try:
        for delta in stream_reply(url, model, msgs, timeout):
            text += delta
            yield text
    except ModelFailure as exc:
        yield fallback(answer, exc.kind, exc.detail)
        return
    if not text.strip():
        yield fallback(answer, "garbage")
        return
    yield verified(answer, text, sources, tokenizer, time.perf_counter() - began)


def verified(
    answer: Answer, reply: str, sources: Sequence[Source], tokenizer, seconds: float = 0.0
) -> Answer:
    """The reply as an Answer: its supported sentences with markers renumbered to the
    citations they point at; the rest in `unsupported`. The extractive answer when none is."""
    verdicts = verify(reply, sources, tokenizer)
    kept = [v for v in verdicts if v.supported]
    unsupported = tuple(MARKER.sub("", v.sentence).strip() for v in verdicts if not v.supported)
    if not kept:
        return dataclasses.replace(fallback(answer, "unverified"), unsupported=unsupported)
    every = (*answer.citations, *answer.more)
    order: list[int] = []
    for v in kept:
        order += [n for n in v.cites if n not in order]
    number = {old: new for new, old in enumerate(order, 1)}
    parts = []
    for v in kept:
        body = MARKER.sub("", v.sentence).strip()
        parts.append(body + "".join(f"[{number[n]}]" for n in v.cites))
    cited = tuple(every[n - 1] for n in order)
    rest = tuple(c for c in every if c not in cited)
    return dataclasses.replace(
        answer,
        text="".join(parts),
        citations=cited,
        more=rest,
        generated=True,
        unsupported=unsupported,
        note="",
        seconds=answer.seconds + seconds,
    )


def final(stream: Iterator[str | Answer]) -> Answer:
    """The last item of `generate`: the answer, once the reply is complete."""
    last = None
    for item in stream:
        last = item
    if not isinstance(last, Answer):
        raise RuntimeError("the answer stream ended without an answer")
    return last
