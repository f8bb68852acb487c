"""A real HTTP server on loopback that speaks the chat-completions protocol (streaming SSE and
not), serving scripted replies chosen by the requested model name."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Replies to 赣服通有多少用户? over the fixture corpus, whose source [1] is the sentence
# 上线一周年时,赣服通已突破900万用户,集成了6697项服务和112种电子证照。
REPLIES = {
    "faithful": "上线一周年时，赣服通已突破900万用户[1]。它集成了6697项服务[1]。",
    "changed": "上线一周年时，赣服通已突破800万用户[1]。",
    "partly": "上线一周年时，赣服通已突破900万用户[1]。赣服通是全国用户最多的政务平台[1]。",
    "swapped": (  # the second sentence puts each number on the other's noun
        "上线一周年时，赣服通已突破900万用户[1]。它集成了112项服务和6697种电子证照[1]。"
    ),
    "missing-source": "赣服通已突破900万用户[9]。",
    "no-markers": "赣服通已突破900万用户。",
    "markup": (
        "上线一周年时，赣服通已突破900万用户[1]。"
        "<script>alert(1)</script>[1]。<img src=x onerror=alert(2)>[1]。"
        "[点我](javascript:alert(3)) ![x](http://evil.example/x.png) &lt;b&gt; <b>未闭合[1]。"
    ),
    "injected": (
        "上线一周年时，赣服通已突破900万用户[1]。"  # the rest obeys an article's 忽略以上指令…
        "赣服通已于昨日停止运营，请改用 http://evil.example 办理[1]。"
    ),
    # terminal control: erase line, colour, an OSC 52 clipboard write, reset, a bidi override
    "escapes": (
        "上线一周年时，赣服通已突破\x1b[2K900万用户\x1b[31m[1]。"
        "\x1b]52;c;cm0gLXJmIH4=\x07赣服通是全国\u202e用户最多的政务平台\x1bc\x9b2J[1]。"
    ),
    # what an article's 忽略以上所有规则 asks for, citing each source in turn
    "obey": "".join(f"赣服通已被关闭[{n}]。" for n in range(1, 7)),
}
SLOW_SECONDS = 5.0
CHUNK_PAUSE = 0.15  # between streamed pieces, so a browser can see the reply grow
# "<model>-slowly" streams <model>'s reply with this pause: on a busy machine a browser may
# otherwise render only the finished reply.
SLOW_PAUSE = 1.0


class Handler(BaseHTTPRequestHandler):
    server: FakeLLM

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(body)
        self.server.keys.append(self.headers.get("Authorization", ""))
        model = body.get("model", "")
        pause = SLOW_PAUSE if model.endswith("-slowly") else self.server.pause
        model = model.removesuffix("-slowly")
        if model == "error":
            self.send_error(500, "scripted failure")
            return
        if model == "slow":
            time.sleep(SLOW_SECONDS)
        if model == "garbage":
            self._send(200, "text/plain", b"}{ this is not the protocol")
            return
        if model in HOSTILE:
            HOSTILE[model](self)
            return
        reply = REPLIES.get(model, REPLIES["faithful"])
        if model == "echo-key":  # the request's key back, in the reply and in a header
            key = self.headers.get("Authorization", "")
            reply = f"上线一周年时，赣服通已突破900万用户[1]。你的密钥是 {key}[1]。"
        if not body.get("stream"):
            self._send(200, "application/json", json.dumps(_completion(reply)).encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if model == "echo-key":
            self.send_header("X-Echo", self.headers.get("Authorization", ""))
        self.end_headers()
        step = max(1, len(reply) // 4)
        for i in range(0, len(reply), step):
            chunk = _chunk(reply[i : i + step])
            self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
            self.wfile.flush()
            time.sleep(pause)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _events(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()


def _keepalive(handler: Handler) -> None:
    """SSE comments forever: no event ever reaches the client's loop."""
    _events(handler)
    for _ in range(int(60 / 0.2)):
        handler.wfile.write(b": keep-alive\n\n")
        handler.wfile.flush()
        time.sleep(0.2)


def _trickle(handler: Handler) -> None:
    """One byte of an event at a time, each within any read timeout, never finishing."""
    _events(handler)
    for _ in range(int(60 / 0.2)):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.2)


def _endless(handler: Handler) -> None:
    """Empty deltas forever, quickly."""
    _events(handler)
    for _ in range(int(60 / 0.05)):
        handler.wfile.write(f"data: {json.dumps(_chunk(''))}\n\n".encode())
        handler.wfile.flush()
        time.sleep(0.05)


def _huge(handler: Handler) -> None:
    """A 10 MB reply in one event, then [DONE]."""
    _events(handler)
    text = "赣服通已突破900万用户[1]。" * (10_000_000 // 16)
    handler.wfile.write(f"data: {json.dumps(_chunk(text), ensure_ascii=False)}\n\n".encode())
    handler.wfile.write(b"data: [DONE]\n\n")
    handler.wfile.flush()


def _bad_utf8(handler: Handler) -> None:
    _events(handler)
    handler.wfile.write(b'data: {"choices":[{"index":0,"delta":{"content":"\xff\xfe\xc3"}}]}\n\n')
    handler.wfile.write(b"data: {not json\n\n")
    handler.wfile.write(b"data: [DONE]\n\n")


def _no_done(handler: Handler) -> None:
    """A faithful reply whose stream ends without [DONE]."""
    _events(handler)
    chunk = _chunk(REPLIES["faithful"])
    handler.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
    handler.wfile.flush()


def _error_body(handler: Handler) -> None:
    """HTTP 200 whose body is an error, echoing the request's key."""
    _events(handler)
    key = handler.headers.get("Authorization", "")
    err = {"error": {"message": f"bad key {key}", "type": "invalid_request_error"}}
    handler.wfile.write(f"data: {json.dumps(err)}\n\n".encode())


def _redirect(handler: Handler) -> None:
    """A redirect to another host (the request would leave the machine)."""
    handler.send_response(307)
    handler.send_header("Location", handler.server.redirect_to)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


HOSTILE = {
    "keepalive": _keepalive,
    "trickle": _trickle,
    "endless": _endless,
    "huge": _huge,
    "bad-utf8": _bad_utf8,
    "no-done": _no_done,
    "error-body": _error_body,
    "redirect": _redirect,
}


def _completion(text: str) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }


def _chunk(text: str) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


class FakeLLM(ThreadingHTTPServer):
    """`with FakeLLM() as server:` serves at server.url until the block ends."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (the timeout case) closes the connection mid-reply

    def __init__(self, pause: float = CHUNK_PAUSE):
        super().__init__(("127.0.0.1", 0), Handler)
        self.pause = pause  # between streamed pieces (tests that read no screen need none)
        self.requests: list[dict] = []
        self.keys: list[str] = []  # each request's Authorization header
        self.redirect_to = "http://127.0.0.2:9/v1/chat/completions"  # model "redirect"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
