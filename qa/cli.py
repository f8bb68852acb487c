"""The `qa` command: build, ask, chat, search, mcp, serve, eval."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from dataclasses import asdict

from .config import DEFAULT_MODEL, Settings
from .errors import QAError

# Where --index may point instead of a folder (qa/stores/milvus/, docs/milvus.md).
MILVUS = "; or milvus://./file.db (Milvus Lite), milvus+http://host:19530 (token: QA_MILVUS_TOKEN)"


BUILD_NICE = 10  # qa build's CPU priority below normal (give_way)
BACKENDS = ("torch", "onnx", "onnx-int8")
BACKEND_HELP = (
    "what computes the vectors: onnx-int8 (default where onnxruntime is installed), onnx, "
    "or torch; also QA_BACKEND=..."
)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _niceness(text: str) -> int:
    # Below normal only: a higher priority needs root, and 19 is the lowest there is.
    value = int(text)
    if not 0 <= value <= 19:
        raise argparse.ArgumentTypeError(f"must be between 0 and 19, not {value}")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with --model, --backend and --llm... on top where given."""
    chosen = {k: getattr(args, k, None) for k in ("model", "backend")}
    return Settings(**{k: v for k, v in chosen.items() if v}, **_llm(args))


def _llm(args: argparse.Namespace) -> dict:
    """The model --llm and --llm-model name, where given (else QA_LLM_URL, QA_LLM_MODEL)."""
    given = {"llm_url": getattr(args, "llm", None), "llm_model": getattr(args, "llm_model", None)}
    return {k: v for k, v in given.items() if v}


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build
    from .stores import redact

    give_way(args.nice)
    # The reader logs each skipped file as it goes; here they are listed once, below.
    reader_log = logging.getLogger("qa.reader")
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)
    settings = _settings(args)
    bars = _Bars() if settings.progress and sys.stderr.isatty() else None
    try:
        stats = build(args.corpus, args.index, settings, progress=bars)
    finally:
        reader_log.setLevel(level)
        if bars is not None:
            bars.close()
    for line in stats.skipped:
        print(f"skipped: {line}", file=sys.stderr)
    for line in stats.notes:
        print(f"note: {line}", file=sys.stderr)
    print(
        f"{stats.articles} articles ({stats.added} added, {stats.changed} changed, "
        f"{stats.removed} removed, {stats.unchanged} unchanged), {stats.paragraphs} paragraphs; "
        f"embedded {stats.embedded} passages in {stats.seconds:.1f} s -> {redact(args.index)}"
    )
    return 0


def give_way(nice: int) -> None:
    """Lower this process's CPU priority by `nice`: a rebuild is background work, and the
    questions a served index answers meanwhile are not. With 8 clients asking `qa serve` while
    `qa build` rebuilt again and again on 2 cores: 98 and 105 answers/s at normal priority,
    122 and 131 below it, each rebuild about a third slower (benchmarks/load.py). Where the
    system offers no priorities (or refuses), the build runs as it is. The priority is
    the process's: `main(["build", ...])` called inside another program lowers it too."""
    if nice > 0 and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(nice)


class _Bars:
    """Build progress on stderr: a bar per stage ("reading report.pdf" for a long document,
    "embedding"), like the embedder's own bar."""

    def __init__(self) -> None:
        self.what, self.bar = "", None

    def __call__(self, what: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if what != self.what or self.bar is None:
            self.close()
            unit = "page" if what.startswith("reading") else "passage"
            self.what, self.bar = what, tqdm(total=total, desc=what, unit=unit, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.what, self.bar = "", None


def _open(args: argparse.Namespace):
    from .assistant import load

    # model=None: the index's own model (QA_MODEL does not apply to asking)
    return load(args.index, Settings(model=None, **_llm(args)), model=args.model)


def _add_llm(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--llm",
        metavar="URL",
        help="write answers with a language model at this OpenAI-compatible base URL, "
        "every sentence checked against its source (also QA_LLM_URL; key: QA_LLM_KEY)",
    )
    p.add_argument("--llm-model", metavar="NAME", help="the model's name (also QA_LLM_MODEL)")


def _say(text: str = "") -> None:
    """print, without terminal control: answers hold article text (titles, file names) and
    model replies, and neither may move the cursor, recolour or write the clipboard."""
    from .generate.llm import printable

    print(printable(text))


def _say_json(data, indent: int | None = None) -> None:
    """print as JSON; what could control a terminal written \\uXXXX (JSON leaves C1 and
    bidi characters as they are), so the text itself is kept."""
    from .generate.llm import TERMINAL_CONTROL

    text = json.dumps(data, ensure_ascii=False, indent=indent)
    print(TERMINAL_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def cmd_ask(args: argparse.Namespace) -> int:
    bot = _open(args)
    answer = bot.ask(args.question)
    if args.json:
        _say_json(answer.to_dict(), indent=2)
        return 0 if answer.found else 3
    _print_answer(answer)
    return 0 if answer.found else 3


def _print_answer(answer) -> None:
    if answer.searched != answer.question:
        _say(f"(按“{answer.searched}”理解)")
    if answer.note:
        _say(f"({answer.note})")
    if answer.phrase:  # the short answer the reader marked, on its own line
        _say(answer.phrase)
    _say(answer.text)
    if answer.unsupported:
        _say("未能在原文中核实(已略去): " + " / ".join(answer.unsupported))
    if answer.citations:
        _say()
        for n, c in enumerate(answer.citations, 1):
            page = f"第{c.page}页 " if c.page else ""
            _say(f"[{n}] {c.title} — {c.article_id}, {page}第{c.paragraph + 1}段")
            _say(f"    {c.sentence}")


def cmd_chat(args: argparse.Namespace) -> int:
    """Questions from standard input, one a line; follow-ups use the earlier turns."""
    from .errors import EmptyQuestionError

    chat = _open(args).chat()
    interactive = sys.stdin.isatty()
    if interactive:
        print("提问,按 Enter;/new 开始新对话;Ctrl-D 结束。")
    while True:
        try:
            line = input("问: " if interactive else "")
        except EOFError:
            return 0
        line = line.strip()
        if not line:
            continue
        if line in ("/new", "/reset", "新对话"):
            chat.reset()
            print("(新对话)")
            continue
        try:
            answer = chat.ask(line)
        except EmptyQuestionError as exc:
            print(f"qa: {exc}", file=sys.stderr)
            continue
        if args.json:
            _say_json(answer.to_dict())
        else:
            if not interactive:
                _say(f"问: {line}")
            _print_answer(answer)
            print()


def cmd_search(args: argparse.Namespace) -> int:
    passages = _open(args).search(args.question, k=args.k)
    if args.json:
        _say_json([asdict(p) for p in passages], indent=2)
        return 0
    for n, p in enumerate(passages, 1):
        page = f"第{p.page}页 " if p.page else ""
        _say(f"{n:>2}. {p.score:.3f}  {p.title} — {p.article_id}, {page}第{p.paragraph + 1}段")
        _say(f"    {p.text[:120]}{'…' if len(p.text) > 120 else ''}")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """The MCP server on standard input and output (qa/mcp.py): stdout carries the protocol."""
    from .mcp import serve_stdio

    serve_stdio(_open(args))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    serve = _app()
    serve(
        corpus=args.corpus,
        index=args.index,
        host=args.host,
        port=args.port,
        auth=args.auth,
        auth_file=args.auth_file,
        api_key_file=args.api_key_file,
        share=args.share,
        settings=_settings(args),
    )
    return 0


def _app():
    """The browser app's `serve`: the app registers itself (pyproject.toml, entry point group
    `qa.serve`), so the library never imports it."""
    from importlib.metadata import entry_points

    apps = entry_points(group="qa.serve")
    if not apps:
        raise QAError(
            "qa serve needs the browser app, which is not installed: run `make setup` "
            "(or `pip install -e .`) in the project folder."
        )
    return next(iter(apps)).load()


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval.evaluate import evaluate, write_report

    if args.follow_ups:
        from .eval.followups import follow_ups, write_follow_up_report

        report = follow_ups(args.data, _settings(args), index=args.index, limit=args.limit)
        print(report.table())
        write_follow_up_report(report, args.out)
        print(f"written to {args.out}")
        return 0

    report = evaluate(
        args.data,
        args.negatives,
        _settings(args),
        index=args.index,
        limit=args.limit,
        same_subject=args.same_subject,
    )
    print(report.table())
    write_report(report, args.out)
    print(f"written to {args.out}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qa", description="Ask questions over a folder of Chinese articles, with citations."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = p.add_subparsers(dest="command", required=True)
    model_help = (
        f"embedding model: {DEFAULT_MODEL} (default, offline), a sentence-transformers model "
        "folder (or a name in the local Hugging Face cache; nothing is downloaded), or 'hash' "
        "for tests; also QA_MODEL=..."
    )

    b = sub.add_parser(
        "build",
        help="index the corpus (only changed articles are re-embedded)",
        description="Index the articles under --corpus into --index. Run it again after "
        "articles arrive or change: it reads only the files that changed since the last build "
        "of a folder index (by size, times and inode) and embeds only text it has not "
        "embedded before.",
    )
    b.add_argument("--corpus", default="corpus", help="folder of articles (default: corpus)")
    b.add_argument(
        "--index", "--store", default="index", help=f"index folder to write (default index){MILVUS}"
    )
    b.add_argument("--model", help=model_help)
    b.add_argument("--backend", choices=BACKENDS, help=BACKEND_HELP)
    b.add_argument(
        "--nice",
        type=_niceness,
        default=BUILD_NICE,
        metavar="N",
        help=f"run N (0-19) steps below normal CPU priority (default {BUILD_NICE}; 0: normal), so "
        "that a qa serve on the same machine keeps answering at full speed while this builds",
    )
    b.set_defaults(run=cmd_build)

    for name, run, text in (
        (
            "ask",
            cmd_ask,
            "answer a question with cited source sentences (QA_READER=on: the answer phrase "
            "the experimental reader marked, first, on its own line)",
        ),
        ("search", cmd_search, "list the passages most relevant to a question"),
    ):
        c = sub.add_parser(name, help=text)
        c.add_argument("question")
        c.add_argument(
            "--index", "--store", default="index", help=f"index folder (default: index){MILVUS}"
        )
        c.add_argument("--model", help="must match the index's model (default: the index's)")
        c.add_argument("--json", action="store_true", help="print JSON")
        if name == "search":
            c.add_argument("-k", type=_positive, default=10, help="how many passages (default 10)")
        else:
            _add_llm(c)
        c.set_defaults(run=run)

    c = sub.add_parser(
        "chat", help="a conversation: questions one a line, follow-ups use earlier turns"
    )
    c.add_argument(
        "--index", "--store", default="index", help=f"index folder (default: index){MILVUS}"
    )
    c.add_argument("--model", help="must match the index's model (default: the index's)")
    c.add_argument("--json", action="store_true", help="print each Answer as one line of JSON")
    _add_llm(c)
    c.set_defaults(run=cmd_chat)

    m = sub.add_parser(
        "mcp", help="an MCP server for agents and editors, on stdin/stdout (docs/usage.md)"
    )
    m.add_argument(
        "--index", "--store", default="index", help=f"index folder (default: index){MILVUS}"
    )
    m.add_argument("--model", help="must match the index's model (default: the index's)")
    _add_llm(m)
    m.set_defaults(run=cmd_mcp)

    s = sub.add_parser(
        "serve", help="the browser app (Gradio), its HTTP API (/api/ask, /v1) and MCP (/mcp)"
    )
    s.add_argument(
        "--corpus", default="corpus", help="folder uploads are saved to (default: corpus)"
    )
    s.add_argument(
        "--index",
        "--store",
        default="index",
        help=f"index folder, built if missing (default: index){MILVUS}",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    s.add_argument(
        "--auth-file",
        metavar="FILE",
        help="require a login: FILE holds one line, user:password (or set QA_AUTH=user:password)",
    )
    s.add_argument(
        "--auth",
        help="require a login, as user:password; visible to other users in ps, so prefer "
        "--auth-file or QA_AUTH",
    )
    s.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="the key /api, /v1 and /mcp require (Authorization: Bearer KEY): FILE holds one line "
        "(or set QA_API_KEY); without one they answer only on a loopback --host",
    )
    s.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    s.add_argument("--model", help=model_help)
    s.add_argument("--backend", choices=BACKENDS, help=BACKEND_HELP)
    _add_llm(s)
    s.set_defaults(run=cmd_serve)

    e = sub.add_parser("eval", help="measure quality on a SQuAD-format file")
    e.add_argument("data", help="SQuAD-format JSON, e.g. ../shared/data/cmrc2018/cmrc2018_dev.json")
    e.add_argument("--negatives", help="SQuAD file whose questions the index cannot answer")
    e.add_argument("--out", default="qa-eval.json", help="JSON report (default qa-eval.json)")
    e.add_argument(
        "--index",
        "--store",
        help=f"keep the evaluation index here (reruns re-embed nothing){MILVUS}",
    )
    e.add_argument("--limit", type=_positive, help="only the first N questions of each file")
    e.add_argument(
        "--same-subject",
        action="store_true",
        help="leave every other context of each article out of the index and count how many "
        "of their questions are refused (the index is about them but cannot answer them)",
    )
    e.add_argument(
        "--follow-ups",
        action="store_true",
        help="measure follow-up questions built from the file's pairs of questions about one "
        "article (subject replaced by a pronoun or dropped) and topic switches",
    )
    e.add_argument("--model", help=model_help)
    e.add_argument("--backend", choices=BACKENDS, help=BACKEND_HELP)
    e.set_defaults(run=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="qa: %(message)s"
    )
    try:
        return args.run(args)
    except QAError as exc:
        print(f"qa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, the traceback only with -v
        from .stores import redact

        if args.verbose:
            traceback.print_exc()
        reason = redact(" ".join(f"{type(exc).__name__}: {exc}".split()))[:300]
        print(
            f"qa: error: unexpected failure ({reason}); this is a bug in qa: run again with "
            "-v for the details and report them.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
