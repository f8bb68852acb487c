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
    "missing-source": "赣服通已突破900万用户[9]。",
    "no-markers": "赣服通已突破900万用户。",
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
        model = body.get("model", "")
        pause = SLOW_PAUSE if model.endswith("-slowly") else CHUNK_PAUSE
        model = model.removesuffix("-slowly")
        if model == "error":
            self.send_error(500, "scripted failure")
            return
        if model == "slow":
            time.sleep(SLOW_SECONDS)
        if model == "garbage":
            self._send(200, "text/plain", b"}{ this is not the protocol")
            return
        reply = REPLIES.get(model, REPLIES["faithful"])
        if not body.get("stream"):
            self._send(200, "application/json", json.dumps(_completion(reply)).encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
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

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
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
