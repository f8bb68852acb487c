"""The browser app (`qa serve`): chat with cited sources, article upload, a JSON API.

    from ui.app import serve
    serve("corpus", "index")          # http://127.0.0.1:7860

This module starts it: the login, a warning when it is open to others, the index opened or
built first, and the page mounted on the HTTP API's app (ui/api.py: /api/ask, /v1, /mcp) with
Gradio's launch options, served by uvicorn. The page itself is ui/page.py; the Service both
ask is ui/service.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import qa
from qa import Assistant, QAError, Settings

from . import theme
from .api import LOOPBACK, build_api, loopback_only, read_api_key
from .errors import first_line
from .page import build_app
from .service import Service, index_location
from .upload import MAX_UPLOAD_BYTES

QUEUE_MAX = 64  # requests waiting in Gradio's queue; more are refused at once ("queue full")
# Browser tabs whose conversation the server keeps; beyond it, the tab used longest ago starts
# over. A tab holds up to ~0.2 MB (TURNS_KEPT turns, ui/session.py); Gradio's default of 10,000
# tabs was 2 GB.
SESSIONS_KEPT = 1000


def launch_kwargs() -> dict:
    """`demo.launch` settings besides address and login: looks, no share link, nothing online."""
    return {
        "theme": theme.theme(),
        "css": theme.CSS,
        "js": theme.JS,
        "footer_links": ["api"],
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
        "max_file_size": MAX_UPLOAD_BYTES,
        "state_session_capacity": SESSIONS_KEPT,
    }


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """'user:password' as a tuple; None when no login is wanted."""
    if not value:
        return None
    user, sep, password = value.strip().partition(":")
    if not sep or not user or not password:
        raise QAError(
            "The login must look like user:password (from QA_AUTH, --auth-file or --auth)."
        )
    return user, password


def read_auth(auth: str | None = None, auth_file: str | Path | None = None) -> str | None:
    """The 'user:password' login: from `auth_file` (its first line), else `auth`, else QA_AUTH.

    A login typed on the command line is visible to every user of the machine in `ps`: a
    warning says so, and that QA_AUTH or --auth-file are not.
    """
    if auth_file:
        return first_line(auth_file, "login", "user:password")
    if auth:
        print(
            "qa: warning: --auth user:password is visible to other users of this machine "
            "(ps); set QA_AUTH=user:password or use --auth-file FILE instead.",
            file=sys.stderr,
        )
        return auth
    return os.environ.get("QA_AUTH")


def exposure_warning(host: str, share: bool, login: tuple[str, str] | None) -> str | None:
    """A warning when the app is reachable beyond this machine without a login."""
    if login is not None:
        return None
    if share:
        return (
            "qa: warning: --share opens a public link to this app, and it has no login: "
            "anyone with the link can read the articles and upload files. Set QA_AUTH=user:"
            "password or --auth-file FILE."
        )
    if host not in ("127.0.0.1", "localhost", "::1"):
        return (
            f"qa: warning: listening on {host} without a login: anyone who can reach this "
            "machine can read the articles and upload files. Set QA_AUTH=user:password or "
            "--auth-file FILE, or keep --host 127.0.0.1."
        )
    return None


def open_or_build(corpus: Path, index: Path, settings: Settings) -> Assistant | None:
    """The index's Assistant, building the index from the corpus first if there is none.

    None when there is neither an index nor an article yet: the app then starts empty and
    waits for uploads.
    """
    try:
        return qa.load(index, settings)
    except (qa.IndexNotFoundError, qa.IndexCorruptError) as exc:
        print(f"qa: {exc}", file=sys.stderr)
    print(f"qa: building the index {index} from {corpus} ...", file=sys.stderr, flush=True)

    def report(what: str, done: int, total: int) -> None:
        unit = "pages" if what.startswith("reading ") else "passages"
        print(f"qa: {what} {done}/{total} {unit}", file=sys.stderr, flush=True)

    try:
        stats = qa.build(corpus, index, settings, progress=report)
    except qa.EmptyCorpusError as exc:
        print(f"qa: {exc} Starting anyway: upload articles in the page.", file=sys.stderr)
        return None
    print(
        f"qa: indexed {stats.articles} articles, {stats.paragraphs} paragraphs "
        f"in {stats.seconds:.1f} s",
        file=sys.stderr,
    )
    return qa.load(index, settings)


def serve(
    corpus: str | Path = "corpus",
    index: str | Path = "index",
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: str | None = None,
    share: bool = False,
    settings: Settings | None = None,
    auth_file: str | Path | None = None,
    api_key_file: str | Path | None = None,
) -> None:
    """Build the index if needed, then serve the app until interrupted.

    The login comes from `auth_file`, `auth` or QA_AUTH (see `read_auth`); the key of /api and
    /v1 (and /mcp) from `api_key_file` or QA_API_KEY (ui/api.py).
    """
    # Offline, always: no model hub lookups, no usage statistics.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    settings = settings or Settings()
    login = parse_auth(read_auth(auth, auth_file))
    key = read_api_key(api_key_file)
    if key is None and not share and host not in LOOPBACK:
        print(
            f"qa: note: on {host}, /api, /v1 and /mcp answer 403 until a key is set: "
            "QA_API_KEY=... or --api-key-file FILE.",
            file=sys.stderr,
        )
    if warning := exposure_warning(host, share, login):
        print(warning, file=sys.stderr)
    corpus, index = Path(corpus), index_location(index)
    assistant = open_or_build(corpus, index, settings)
    if assistant is not None:
        assistant.warm()  # not in the first question
    service = Service(corpus, index, settings, assistant)
    demo = build_app(service)
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_MAX)
    if share:
        # A share link tunnels Gradio's own server only: the page, without /api, /v1 and /mcp.
        print("qa: note: /api, /v1 and /mcp are not served on a --share link.", file=sys.stderr)
        demo.launch(server_name=host, server_port=port, auth=login, share=True, **launch_kwargs())
        return
    app = mount(build_api(service, key, host, login is not None), demo, host, port, login)
    if key is None and host in LOOPBACK:  # every route, the page's too (ui/api.py)
        app = loopback_only(app)
    run(app, host, port)


def mount(app, demo, host: str, port: int, login: tuple[str, str] | None):
    """`app` (the /api, /v1 and /mcp routes) with the page mounted on it at /, as `launch` would
    set it up: the login, the looks, the sessions kept."""
    import gradio as gr

    options = launch_kwargs()
    demo.state_session_capacity = options.pop("state_session_capacity")
    return gr.mount_gradio_app(
        app, demo, path="/", server_name=host, server_port=port, auth=login, **options
    )


def run(app, host: str, port: int) -> None:
    """Serve `app` until interrupted (uvicorn, as Gradio's own launch does)."""
    import uvicorn

    print(
        f"qa: serving http://{host}:{port} (API: /api/ask, /v1; MCP: /mcp)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
