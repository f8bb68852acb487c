"""An MCP server over an index (`qa mcp --index DIR`, and /mcp on `qa serve`), for agents and
editors: the tools search, ask and read_paragraph, each a thin wrapper over an Assistant.

    from qa.mcp import server
    server(lambda: bot).run("stdio")

Built on the official `mcp` SDK (pip install "qa-zh[mcp]"), imported only here, when a server
is made. No `from __future__ import annotations`: the SDK reads the tools' annotations to
describe them, and they name types imported inside `server`.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

from .assistant import Assistant
from .errors import QAError

MAX_K = 50  # passages one search returns at most: an agent's context, not the whole index


def server(current: Callable[[], Assistant]):
    """An `MCPServer` whose tools answer through `current()`: the Assistant live when a call
    arrives (the app swaps in a new one after a rebuild). `current` may raise QAError (no
    index yet), which the caller gets as the tool's error."""
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
        from mcp.types import CallToolResult, TextContent
    except ImportError:
        raise QAError(
            'The MCP server needs the mcp package: pip install "qa-zh[mcp]" (or `make setup`).'
        ) from None

    app = MCPServer(
        "qa",
        instructions="Answers questions from a knowledge base of Chinese articles; every answer "
        "cites its source sentences (article title, article_id, paragraph).",
        log_level="WARNING",
    )

    def answering(call: Callable[[Assistant], object]):
        # Refusals of the library (an empty question, no index, Milvus down) are the caller's
        # to read: an error result with the message, never a traceback.
        try:
            return call(current())
        except QAError as exc:
            raise ToolError(str(exc)) from None

    @app.tool()
    def search(query: str, k: int = 5) -> dict[str, Any]:
        """The k passages (default 5, at most 50) most relevant to the query, best first: each
        with article_id, title, paragraph (from 0), text and score (page for PDFs)."""
        if not 1 <= k <= MAX_K:
            raise ToolError(f"k 要在 1 到 {MAX_K} 之间,不是 {k}。")
        passages = answering(lambda bot: bot.search(query, k))
        return {"passages": [dataclasses.asdict(p) for p in passages]}

    @app.tool()
    def ask(question: str) -> CallToolResult:
        """A short answer to the question that cites its source sentences with [n] markers,
        the numbered sources after it. found is false when the articles do not answer it;
        each citation names its article's title, article_id (the file) and paragraph."""
        answer = answering(lambda bot: bot.ask(question))
        return CallToolResult(
            content=[TextContent(type="text", text=answer.to_text())],
            structured_content=answer.to_dict(),
        )

    @app.tool()
    def read_paragraph(article_id: str, paragraph: int) -> dict[str, Any]:
        """The whole paragraph of an article, as search and ask name it (article_id, and
        paragraph counted from 0), with the article's title."""
        article = answering(lambda bot: _article(bot, article_id))
        if not 0 <= paragraph < len(article.paragraphs):
            raise ToolError(
                f"《{article.title}》({article.id})没有第 {paragraph} 段:"
                f"段落从 0 数到 {len(article.paragraphs) - 1}。"
            )
        return {
            "article_id": article.id,
            "title": article.title,
            "paragraph": paragraph,
            "page": article.page(paragraph),
            "text": article.paragraphs[paragraph],
        }

    return app


MAX_ID_CHARS = 1000  # an article id is a file's path or a record's id
QUOTED_CHARS = 100  # of a wrong id, quoted back in the error


def _article(bot: Assistant, article_id: str):
    shown = repr(article_id[:QUOTED_CHARS]) + ("…" if len(article_id) > QUOTED_CHARS else "")
    try:
        if len(article_id) > MAX_ID_CHARS:
            raise KeyError(article_id)
        return bot.article(article_id)
    except KeyError:
        raise QAError(
            f"没有 id 为 {shown} 的文章:article_id 要照 search 或 ask 结果里的写。"
        ) from None


def serve_stdio(bot: Assistant) -> None:
    """Serve `bot`'s index over standard input and output until the client closes them."""
    server(lambda: bot).run("stdio")
