"""The MCP server (qa/mcp.py), driven by the official `mcp` SDK's own client: over stdio
(`qa mcp --index DIR`) and over streamable HTTP at /mcp on `qa serve`, behind the API key."""

from __future__ import annotations

import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from conftest import ANSWERABLE, HASH, OFF_TOPIC, ROOT, write_corpus
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from test_api import serving

import qa
from qa.answer.sentences import NOT_FOUND
from ui.api import build_api
from ui.devserver import running
from ui.service import NO_INDEX, Service

KEY = "sk-mcp-test"
QUESTION = "赣服通集成了多少项服务?"
TOOLS = {"search", "ask", "read_paragraph"}


def stdio(index: Path):
    """`qa mcp --index index` in a subprocess, as an editor starts it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    args = ["-m", "qa.cli", "mcp", "--index", str(index)]
    return stdio_client(StdioServerParameters(command=sys.executable, args=args, env=env))


@asynccontextmanager
async def http(base: str, key: str | None = None):
    """The streamable HTTP transport to `base`/mcp, sending `key` as the bearer token."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers) as client,
        streamable_http_client(f"{base}/mcp", http_client=client) as streams,
    ):
        yield streams


def call(transport, *calls: tuple[str, dict]) -> tuple[set[str], list[CallToolResult]]:
    """The server's tool names, and the result of each (tool, arguments) call in turn."""

    async def talk():
        async with transport as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            results = [await session.call_tool(name, arguments) for name, arguments in calls]
            return {t.name for t in tools.tools}, results

    return anyio.run(talk)


def text(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content)


def untimed(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "seconds"}


def check_each_tool(tools: set[str], results: list[CallToolResult], bot: qa.Assistant) -> None:
    """What `calls_of_each_tool` got back: real passages, the cited answer, its paragraph."""
    searched, asked, read = results
    assert tools == TOOLS and not any(r.is_error for r in results)
    article, fragment = ANSWERABLE[QUESTION]
    best = searched.structured_content["passages"][0]
    assert (
        best["article_id"] == article and best["score"] > 0 and best["title"] == "赣服通上线一周年"
    )
    assert len(searched.structured_content["passages"]) == 3
    # the answer's one JSON shape, the same as the library's (one answering path)
    answer = asked.structured_content
    assert untimed(answer) == untimed(bot.ask(QUESTION).to_dict())
    cited = answer["citations"][0]
    assert fragment in cited["sentence"] and cited["article_id"] == article
    # the readable reply: [n] markers, then the numbered sources with title, file and paragraph
    assert text(asked) == bot.ask(QUESTION).to_text()
    assert f"[1] 赣服通上线一周年 — {article}, 第{cited['paragraph'] + 1}段" in text(asked)
    assert read.structured_content["title"] == "赣服通上线一周年"
    assert cited["sentence"] in read.structured_content["text"]


def calls_of_each_tool(paragraph: int) -> list[tuple[str, dict]]:
    return [
        ("search", {"query": QUESTION, "k": 3}),
        ("ask", {"question": QUESTION}),
        ("read_paragraph", {"article_id": ANSWERABLE[QUESTION][0], "paragraph": paragraph}),
    ]


# -- stdio: `qa mcp` ---------------------------------------------------------------------


def test_qa_mcp_over_stdio_lists_and_calls_each_tool(built_index, bot):
    paragraph = bot.ask(QUESTION).citations[0].paragraph
    tools, results = call(stdio(built_index), *calls_of_each_tool(paragraph))
    check_each_tool(tools, results, bot)


def test_refusals_and_bad_input_are_answers_or_clear_tool_errors(built_index):
    article = ANSWERABLE[QUESTION][0]
    _, (refused, unknown_paragraph, unknown_article, empty, no_k, not_a_string) = call(
        stdio(built_index),
        ("ask", {"question": OFF_TOPIC[0]}),
        ("read_paragraph", {"article_id": article, "paragraph": 99}),
        ("read_paragraph", {"article_id": "没有这篇.txt", "paragraph": 0}),
        ("ask", {"question": "  ?? "}),
        ("search", {"query": QUESTION, "k": 0}),
        ("ask", {"question": ["赣服通"]}),
    )
    # a question the articles do not answer is an answer: the refusal, found false
    assert not refused.is_error and text(refused) == NOT_FOUND
    assert refused.structured_content["found"] is False
    assert unknown_paragraph.is_error and "没有第 99 段:段落从 0 数到 2" in text(unknown_paragraph)
    assert unknown_article.is_error and "没有 id 为 '没有这篇.txt' 的文章" in text(unknown_article)
    assert empty.is_error and "The question is empty" in text(empty)
    assert no_k.is_error and "k 要在 1 到 50 之间" in text(no_k)
    assert not_a_string.is_error and "question" in text(not_a_string)
    for result in (unknown_paragraph, unknown_article, empty, no_k, not_a_string):
        assert "Traceback" not in text(result)


# -- streamable HTTP: /mcp on `qa serve` ---------------------------------------------------


def test_qa_serve_serves_mcp_behind_the_api_key(built_index, bot, tmp_path):
    paragraph = bot.ask(QUESTION).citations[0].paragraph
    corpus = built_index.parent / "corpus"
    log = tmp_path / "serve.log"
    with running(corpus, built_index, "hash", log=log, env={"QA_API_KEY": KEY}) as url:
        base = url.rstrip("/")
        tools, results = call(http(base, KEY), *calls_of_each_tool(paragraph))
        check_each_tool(tools, results, bot)
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        for headers in ({"Authorization": "Bearer wrong"}, {}):
            response = httpx.post(f"{base}/mcp", json=initialize, headers=headers)
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(Exception) as refused:  # the SDK's own client: no session
            call(http(base, "wrong"))
        assert refused.group_contains(MCPError, match="error response", depth=None)


def test_with_a_key_mcp_answers_whatever_the_host_name(bot, tmp_path):
    """Behind a proxy the Host is the proxy's name: the key decides, as for /v1 (the SDK's
    own Host check refused it with 421)."""
    service = Service(tmp_path / "corpus", tmp_path / "index", HASH, bot)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = "application/json, text/event-stream"
    with serving(build_api(service, KEY)) as base:
        for host in ("kb.example.com", "LOCALHOST:7860", "localhost"):
            headers = {"Host": host, "Authorization": f"Bearer {KEY}", "Accept": accept}
            assert httpx.post(f"{base}/mcp", json=ping, headers=headers).status_code == 200, host


def test_a_huge_article_id_is_not_echoed_back(bot, tmp_path):
    service = Service(tmp_path / "corpus", tmp_path / "index", HASH, bot)
    with serving(build_api(service, KEY)) as base:
        _, (result,) = call(
            http(base, KEY), ("read_paragraph", {"article_id": "\u202e" * 200_000, "paragraph": 0})
        )
    assert result.is_error and len(text(result)) < 1000  # 100 characters quoted, escaped


def test_without_a_key_mcp_is_served_on_loopback_only(bot, tmp_path):
    service = Service(tmp_path / "corpus", tmp_path / "index", HASH, bot)
    with serving(build_api(service, None, "0.0.0.0")) as base:
        response = httpx.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert response.status_code == 403 and "QA_API_KEY" in response.text
    with serving(build_api(service, None)) as base:
        tools, _ = call(http(base))
        assert tools == TOOLS


def test_mcp_answers_with_the_index_the_page_rebuilt(tmp_path):
    """The tools ask the app's live Assistant: none before any article, the new one after a
    rebuild, as /api/ask does."""
    service = Service(tmp_path / "corpus", tmp_path / "index", HASH, None)
    with serving(build_api(service, KEY)) as base:
        _, (before,) = call(http(base, KEY), ("ask", {"question": QUESTION}))
        assert before.is_error and NO_INDEX in text(before)
        write_corpus(tmp_path / "corpus")
        assert service.rebuild()[0].startswith("索引已更新")
        _, (after,) = call(http(base, KEY), ("ask", {"question": QUESTION}))
        assert not after.is_error and after.structured_content["found"]
