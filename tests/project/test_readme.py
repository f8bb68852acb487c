"""The examples of README.md's "Ways in", run as they are written: each is read from the
README's code blocks, so an edit that breaks an example breaks this test.

One `qa serve` (with an API key) answers the gradio_client, curl and openai examples; the
Python example builds its own index, as it says; `qa ask` and the MCP configuration run the
venv's `qa` against an index of the sample corpus.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from string import Template

import anyio
import httpx
import pytest
from conftest import ROOT, SAMPLE_CORPUS
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

import qa
from ui.devserver import running

pytestmark = pytest.mark.model

KEY = "sk-readme-test"
QUESTION = "赣服通集成了多少项服务?"
ANSWER = "6697项服务"  # what the sample corpus says, whichever sentence the answer quotes
QA = Path(sys.executable).parent / "qa"  # the venv's `qa`, as `pip install` made it
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "QA_API_KEY": KEY}


def section() -> str:
    """README.md's "Ways in" section, up to the next "## " heading."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Ways in\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def example(language: str, holding: str) -> str:
    """The one ```language block of the section that holds `holding`."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", section(), flags=re.MULTILINE | re.DOTALL)
    found = [code for lang, code in blocks if lang == language and holding in code]
    assert len(found) == 1, f"README.md: {len(found)} ```{language} blocks hold {holding!r}"
    return found[0]


def documented(code: str) -> dict[str, str]:
    """The values an example's comments give: `expression  # "value"` -> {expression: value}."""
    pairs = re.findall(r'^(\S.*?)  # ("[^"]*")', code, flags=re.MULTILINE)
    return {expression: ast.literal_eval(value) for expression, value in pairs}


def run(cmd: list[str], cwd: Path = ROOT, timeout: float = 120) -> str:
    """`cmd`'s stdout, once it has exited 0."""
    # a hang fails the test here, by the timeout
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# Runs a Python example and prints, as JSON, the value of each expression statement (`ans.text`,
# `... == c.sentence`) keyed by its source: what the README's comments say they are.
EXPRESSIONS = """
import ast, json, sys

source, values, namespace = sys.argv[1], {}, {}
for node in ast.parse(source).body:
    if isinstance(node, ast.Expr):
        value = eval(compile(ast.Expression(node.value), "README.md", "eval"), namespace)
        plain = isinstance(value, (str, bool, int, float)) or value is None
        values[ast.get_source_segment(source, node)] = value if plain else repr(value)
    else:
        exec(compile(ast.Module([node], []), "README.md", "exec"), namespace)
print(json.dumps(values, ensure_ascii=False))
"""


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A folder with corpus/ (the sample article) and index/ built from it with m3e-small."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(SAMPLE_CORPUS, root / "corpus")
    qa.build(root / "corpus", root / "index", qa.Settings(model="m3e-small", progress=False))
    return root


@pytest.fixture(scope="module")
def port(sample: Path, tmp_path_factory) -> Iterator[str]:
    """The port of a `qa serve` over the sample index, with the API key KEY."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with running(sample / "corpus", sample / "index", log=log, env={"QA_API_KEY": KEY}) as url:
        yield url.rstrip("/").rsplit(":", 1)[1]


def on(port: str, code: str) -> str:
    """An example's code aimed at the test's server instead of port 7860."""
    assert "127.0.0.1:7860" in code
    return code.replace("127.0.0.1:7860", f"127.0.0.1:{port}")


def test_the_python_example(tmp_path):
    shutil.copytree(SAMPLE_CORPUS, tmp_path / "corpus")  # it builds corpus/ -> index/ here
    code = example("python", "import qa\n")
    values = json.loads(run([sys.executable, "-c", EXPRESSIONS, code], cwd=tmp_path))
    shown = documented(code)
    assert values["ans.text"] == shown["ans.text"] and ANSWER in values["ans.text"]
    assert values["ans.found"] is True
    # the phrase depends on the reader model, which may be absent: "" then
    assert values["ans.phrase"] in values["ans.text"]
    assert values["bot.paragraph(c.article_id, c.paragraph)[c.start : c.end] == c.sentence"]
    follow_up = 'chat.ask("它有多少用户?").searched'
    assert values[follow_up] == shown[follow_up] == "赣服通有多少用户?"
    assert (tmp_path / "index" / "manifest.json").is_file()


def test_the_gradio_client_example(port):
    printed = run([sys.executable, "-c", on(port, example("python", "gradio_client"))])
    lines = [line for line in printed.splitlines() if not line.startswith("Loaded as API")]
    text, first_source = lines[:2]  # less gradio_client's own line
    assert ANSWER in text and "[1]" in text
    assert first_source.startswith("[1] ") and "第2段" in first_source and ANSWER in first_source


def test_the_curl_example(port):
    command = on(port, example("bash", "curl "))
    if shutil.which("curl"):
        reply = run(["bash", "-c", command])
    else:
        # No curl on this machine (the Makefile does not install it): send the request the
        # command describes with httpx, its -H headers and its -d body, $QA_API_KEY expanded.
        words = shlex.split(
            Template(command.replace("\\\n", " ")).safe_substitute(ENV), comments=True
        )
        url = next(w for w in words if w.startswith("http"))
        headers = dict(
            words[i + 1].split(": ", 1) for i, w in enumerate(words) if w in ("-H", "--header")
        )
        body = next(words[i + 1] for i, w in enumerate(words) if w in ("-d", "--data"))
        reply = httpx.post(url, content=body.encode(), headers=headers, timeout=60).text
    answer = json.loads(reply)
    assert answer.get("searched") == "赣服通有多少用户?" and answer["found"], answer
    assert "900万用户" in answer["text"]


def test_the_openai_example(port):
    printed = run([sys.executable, "-c", on(port, example("python", "from openai import OpenAI"))])
    assert ANSWER in printed.split("\n\n")[0] and "\n\n[1] " in printed


def test_the_command_line_example(sample):
    line = next(
        line for line in example("bash", "qa ask").splitlines() if line.startswith('qa ask "')
    )
    words = shlex.split(line, comments=True)
    printed = run([str(QA), *words[1:], "--index", str(sample / "index")])
    # the output shown below the commands; with the reader on (QA_READER=on) the phrase it
    # marked is printed on a line of its own before it
    session = example("", f"$ {line.split('  #')[0].strip()}\n").splitlines()
    assert printed.rstrip().splitlines()[-len(session[1:]) :] == session[1:], printed
    assert ANSWER in printed


def test_the_mcp_configuration(sample):
    server = json.loads(example("json", "mcpServers"))["mcpServers"]["qa"]
    assert server["command"] == "qa"  # started from PATH: here the venv's own
    args = list(server["args"])
    args[args.index("--index") + 1] = str(sample / "index")

    async def ask() -> str:
        params = StdioServerParameters(command=str(QA), args=args, env=ENV)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("ask", {"question": QUESTION})
            assert not result.is_error, result.content
            return "".join(c.text for c in result.content)

    reply = anyio.run(ask)
    assert ANSWER in reply.split("\n\n")[0] and "\n\n[1] " in reply
