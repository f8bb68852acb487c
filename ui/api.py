"""The HTTP API beside the page (`build_api`): `POST /api/ask`, the answer's JSON, and an
OpenAI-compatible `/v1` (models, chat completions) for chat clients such as Cherry Studio,
ChatBox or Open WebUI (docs/usage.md).

Both answer through `Service.ask_after`, as the page's own API does, so an answer is the same
whichever door it came in by. They skip Gradio's queue: the handlers run in a thread pool
(an answer is ~10 ms of CPU), never on the event loop. `/mcp` is the MCP server (qa/mcp.py)
over the same live Assistant, behind the same key.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from qa import Answer, EmptyQuestionError, Final, QAError
from qa.answer.question import check_question

from .errors import failed, first_line
from .service import NO_INDEX, Service

MODEL_ID = "qa"  # the knowledge base, as the one model /v1/models lists
MAX_BODY_BYTES = 1_000_000  # a question is at most a few thousand characters
LOOPBACK = ("127.0.0.1", "::1", "localhost")
LOGIN_WITHOUT_KEY = (
    "这个页面设了登录,API(/api、/v1、/mcp)不会绕过它:请设置 QA_API_KEY"
    "(或 qa serve --api-key-file FILE)后重新启动,再用这个密钥访问 API。"
)
HOST_NOT_ALLOWED = (
    "没有密钥时只回答发往 127.0.0.1 或 localhost 的请求;要用别的地址访问,"
    "请设置 QA_API_KEY(或 qa serve --api-key-file FILE)。"
)


class ApiError(Exception):
    """An error answered in the OpenAI shape: {"error": {"message", "type", "code"}}.

    Not a frozen dataclass: Python sets an exception's __traceback__ as it is raised.
    """

    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.type = status, message, code, kind

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.type, "code": self.code}
        return JSONResponse({"error": error}, status_code=self.status)


def read_api_key(key_file: str | Path | None = None) -> str | None:
    """The API key: the first line of `key_file`, else QA_API_KEY; None when neither is set."""
    if key_file:
        key = first_line(key_file, "API key", "the key")
        if not key:
            raise QAError(f"The API key file {key_file} is empty: write the key on its first line.")
    else:
        key = os.environ.get("QA_API_KEY", "").strip()
    if key and not (key.isascii() and key.isprintable() and " " not in key):
        # HTTP headers are ASCII: a client could never send such a key.
        raise QAError("The API key must be printable ASCII without spaces, e.g. sk-... .")
    return key or None


def build_api(
    service: Service, key: str | None, host: str = "127.0.0.1", login: bool = False
) -> FastAPI:
    """The FastAPI app with /api, /v1 and the MCP server at /mcp; the page is mounted on it
    afterwards (ui/app.py).

    With a `key`, every route wants `Authorization: Bearer <key>`. Without one they answer
    only on a loopback `host`: anyone who can reach the server could read the articles; and
    not at all when the page has a `login`, which its owner takes to protect the articles.
    """
    mcp = mcp_app(service, host)
    # The MCP app's lifespan (its session manager) is the API's: Starlette never runs the
    # lifespan of an app a route leads to.
    lifespan = mcp.router.lifespan_context if mcp is not None else None
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_exception_handler(ApiError, lambda request, exc: exc.response())

    def allowed(request: Request) -> None:
        if key is None and login:
            raise ApiError(403, LOGIN_WITHOUT_KEY, "api_key_required", "permission_error")
        check_key(request, key, host)

    async def guard(request: Request) -> None:
        allowed(request)

    router = APIRouter(dependencies=[Depends(guard)])

    @router.post("/api/ask")
    async def ask(request: Request) -> JSONResponse:
        question, history = ask_request(await read_json(request))
        answer = await run_in_threadpool(answer_after, service, question, history)
        return JSONResponse(answer.to_dict())

    @router.get("/v1/models")
    def models() -> dict:
        model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "qa"}
        return {"object": "list", "data": [model]}

    @router.post("/v1/chat/completions")
    async def completions(request: Request):
        question, history, stream = chat_request(await read_json(request))
        if not stream:
            answer = await run_in_threadpool(answer_after, service, question, history)
            return JSONResponse(completion(answer))
        if service.assistant is None:
            raise ApiError(503, NO_INDEX, "no_index", "server_error")
        events = service.stream_after(question, history)
        return StreamingResponse(sse(events), media_type="text/event-stream")

    app.include_router(router)
    if mcp is not None:
        # The app as the endpoint of /mcp, not mounted: it sees the path /mcp, its own route.
        app.router.routes.append(Route("/mcp", KeyChecked(mcp, allowed)))
    return app


_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9.-]+))(?::[0-9]{1,5})?")


def _host_name(header: str) -> str:
    """The name in a Host header without its port ("127.0.0.1", "localhost", "::1"); "" for
    anything that is not exactly a name or [address] and an optional port."""
    found = _HOST.fullmatch(header.lower())
    return "" if found is None else found["v6"] or found["name"]


def loopback_only(app: ASGIApp) -> ASGIApp:
    """`app` answering only requests addressed to a loopback name (the Host header), every
    route of it: the page and Gradio's API too. Without a key that is the only protection
    against a web page whose own host name now resolves to 127.0.0.1 (DNS rebinding)."""

    async def guarded(scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if _host_name(host) not in LOOPBACK:
                error = ApiError(403, HOST_NOT_ALLOWED, "host_not_allowed", "permission_error")
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await error.response()(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


def check_key(request: Request, key: str | None, host: str) -> None:
    """Nothing when the request may be answered; else the ApiError (403, 401) that says why."""
    if key is None:
        if host not in LOOPBACK:
            raise ApiError(
                403,
                f"这个服务器在 {host} 上对外开放,API 需要密钥:请设置 QA_API_KEY"
                "(或 qa serve --api-key-file FILE)后重新启动。",
                "api_key_required",
                "permission_error",
            )
        # Without a key, only pages and programs on this machine may ask: a web page that
        # points its own host name at 127.0.0.1 (DNS rebinding) sends that name as Host
        # (serve() also guards every other route with `loopback_only`).
        if _host_name(request.headers.get("host", "")) not in LOOPBACK:
            raise ApiError(403, HOST_NOT_ALLOWED, "host_not_allowed", "permission_error")
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise ApiError(
            401,
            "API 密钥不对或没有提供:请求头要有 Authorization: Bearer <QA_API_KEY>。",
            "invalid_api_key",
            "authentication_error",
        )


# -- MCP -----------------------------------------------------------------------------------


def mcp_app(service: Service, host: str) -> Starlette | None:
    """The MCP server (qa/mcp.py) over the live Assistant, as streamable HTTP at /mcp; None
    without the mcp package (then /mcp is not served).

    Stateless with JSON replies: each call is one request and its answer, so no session is
    kept on the server for any number of clients, and a restart loses nothing.
    """
    from qa.mcp import server

    try:
        mcp = server(service.answering)
    except QAError:
        return None
    from mcp.server.transport_security import TransportSecuritySettings

    return mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        host=host,
        # One rule for who may ask, check_key's: the SDK's own Host/Origin check would refuse
        # a keyed server behind a proxy, and a loopback one asked as LOCALHOST.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


class KeyChecked:
    """An ASGI app (the MCP server) behind the check the /api and /v1 routes have."""

    def __init__(self, app: ASGIApp, allowed: Callable[[Request], None]):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.allowed(Request(scope))
        except ApiError as exc:
            await exc.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)


# -- requests ------------------------------------------------------------------------------


async def read_json(request: Request) -> object:
    """The body as JSON, read no further than MAX_BODY_BYTES."""
    too_big = ApiError(413, f"请求太大:最多 {MAX_BODY_BYTES} 字节。", "body_too_large")
    try:
        declared = int(request.headers.get("content-length") or 0)
    except ValueError:
        raise ApiError(400, "Content-Length 不是数字。", "invalid_body") from None
    if declared > MAX_BODY_BYTES:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_big
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: [[[[... nested beyond Python's stack
        raise ApiError(400, "请求体不是 JSON。", "invalid_json") from None


def ask_request(body: object) -> tuple[str, list[str]]:
    """/api/ask's question and history, or a 400 that says what is wrong."""
    if not isinstance(body, dict):
        raise ApiError(
            400, '请求体要是 JSON 对象:{"question": "...", "history": [...]}。', "invalid_body"
        )
    question = body.get("question")
    history = body.get("history", [])
    if not isinstance(question, str):
        raise ApiError(400, '缺少 "question"(字符串)。', "invalid_question")
    if not isinstance(history, list) or not all(isinstance(q, str) for q in history):
        raise ApiError(400, '"history" 要是字符串列表:之前的问题,从早到晚。', "invalid_history")
    return checked(question), history


def chat_request(body: object) -> tuple[str, list[str], bool]:
    """The question (the last user message), the history (the user messages before it) and
    whether to stream, from a chat-completions body."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise ApiError(400, '请求体要有 "messages" 列表。', "invalid_messages")
    asked = [
        message_text(m) for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"
    ]
    if not asked:
        raise ApiError(400, '"messages" 里没有用户的问题(role 为 "user")。', "invalid_messages")
    return checked(asked[-1]), asked[:-1], body.get("stream") is True


def message_text(message: dict) -> str:
    """A message's text: its content string, or its text parts joined (clients send both)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def checked(question: str) -> str:
    """`question` as sent (answered as the page's API would), once it is known to be one: an
    empty question is a 400 here, not an error in the middle of a stream."""
    try:
        check_question(question)
    except EmptyQuestionError as exc:
        raise ApiError(400, str(exc), "invalid_question") from None
    return question


# -- answers -------------------------------------------------------------------------------


def answer_after(service: Service, question: str, history: list[str]) -> Answer:
    """`Service.ask_after`'s answer; its errors as ApiErrors."""
    try:
        return service.ask_after(question, history).answer
    except EmptyQuestionError as exc:
        raise ApiError(400, str(exc), "invalid_question") from None
    except QAError as exc:
        raise ApiError(503, str(exc), "unavailable", "server_error") from None
    except Exception as exc:
        raise ApiError(500, failed("回答失败", exc), "internal_error", "server_error") from None


def completion(answer: Answer) -> dict:
    """A `chat.completion` object; `qa` holds the structured answer, which clients ignore."""
    message = {"role": "assistant", "content": answer.to_text()}
    return {
        **_head("chat.completion"),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "qa": answer.to_dict(),
    }


def sse(events: Iterator) -> Iterator[str]:
    """`chat.completion.chunk` events ending with `data: [DONE]`: a generated reply's draft
    as it is written (Partial), then the cited answer as the content.

    The draft goes in `reasoning_content`, which Cherry Studio, ChatBox and Open WebUI show
    as the model's "thinking": verification may drop its sentences or renumber its markers,
    and a client cannot take back content it was sent. So the content is only ever the
    verified answer, the same as without streaming. Starlette runs this sync generator in its
    thread pool, so answering never blocks the event loop.
    """
    head = _head("chat.completion.chunk")
    drafted = ""

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        data = json.dumps({**head, "choices": [choice], **extra}, ensure_ascii=False)
        return f"data: {data}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        for event in events:
            if isinstance(event, Final):
                yield chunk({"content": event.answer.to_text()})
                yield chunk({}, "stop", qa=event.answer.to_dict())
            elif event.text.startswith(drafted) and len(event.text) > len(drafted):
                yield chunk({"reasoning_content": event.text[len(drafted) :]})
                drafted = event.text
    except Exception as exc:
        error = {
            "message": failed("回答失败", exc),
            "type": "server_error",
            "code": "internal_error",
        }
        yield f"data: {json.dumps({'error': error}, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


def _head(kind: str) -> dict:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": MODEL_ID,
    }
