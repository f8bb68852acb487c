"""Where a Milvus index is: `milvus://file.db` (Milvus Lite) or `milvus+http(s)://host`,
parsed into a Target; no message ever shows a password or token."""

from __future__ import annotations

import contextlib
import os
import re
import urllib.parse
from dataclasses import dataclass

from ...errors import QAError


@dataclass(frozen=True)
class Target:
    """Where the index lives: `uri` is what MilvusClient takes (a .db file or http(s)://).

    `label` names it in messages: the address without any password or token.
    """

    uri: str
    token: str
    prefix: str
    label: str = ""

    @property
    def lite(self) -> bool:
        return not self.uri.startswith(("http://", "https://"))

    def collection(self, name: str) -> str:
        return f"{self.prefix}_{name}"


def parse_uri(index: str) -> Target:
    """`milvus:///abs/file.db`, `milvus://./rel.db` (Milvus Lite) or `milvus+http://host:19530`.

    `?prefix=NAME` names the collections; the token comes from QA_MILVUS_TOKEN, or from
    `user:password@` in the URI (percent-encoded as URIs are: `p%40ss` is `p@ss`).
    No message ever shows the password or token.
    """
    shown = redact(index)
    rest, _, query = index.partition("?")
    params = urllib.parse.parse_qs(query)
    prefix = params.get("prefix", [os.environ.get("QA_MILVUS_PREFIX", "qa")])[0]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", prefix):
        raise QAError(
            f"The Milvus collection prefix {prefix[:80]!r} is not allowed: use letters, digits "
            "and underscores, starting with a letter, e.g. ?prefix=news."
        )
    token = os.environ.get("QA_MILVUS_TOKEN", "")
    if rest.startswith("milvus://"):
        path = rest[len("milvus://") :]
        if not path.endswith(".db"):
            raise QAError(
                f"{shown} names no Milvus Lite file: its name must end in .db, e.g. "
                "milvus://./index.db or milvus:///srv/qa/index.db. A cluster is "
                "milvus+http://host:19530."
            )
        return Target(path, token, prefix, shown)
    url = urllib.parse.urlsplit(rest.removeprefix("milvus+"))
    try:
        port = url.port
    except ValueError:
        port = -1
    if not url.hostname or port == -1:
        raise QAError(
            f"{shown} is not a Milvus address: write it as milvus+http://host:19530 "
            "(the port a number up to 65535; an IPv6 host in brackets, [::1])."
        )
    user = urllib.parse.unquote(url.username or "")
    password = urllib.parse.unquote(url.password or "")
    if not token:
        if user and url.password is not None:
            token = f"{user}:{password}"
        else:
            token = password or user  # milvus+http://:KEY@host or KEY@host: an API key
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    uri = f"{url.scheme}://{host}{f':{port}' if port else ''}"
    return Target(uri, token, prefix, shown)


def redact(text: str) -> str:
    """`text` (an address, or a message holding one) without passwords or tokens:
    milvus+http://ann:p@host -> milvus+http://ann:***@host, milvus+http://KEY@host ->
    milvus+http://***@host, ?token=KEY -> ?token=***."""
    text = re.sub(r"(?<=://)([^/@\s:]*):[^/@\s]*@", r"\1:***@", text)
    text = re.sub(r"(?<=://)[^/@\s:]+@", "***@", text)
    return re.sub(r"(?i)\b(token|password|secret)=[^&#\s]*", r"\1=***", text)


def clean_message(exc: BaseException, target: Target) -> str:
    """An exception's text as one line, without the target's token."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in {target.token, *target.token.split(":")[1:]} - {""}:
        text = text.replace(secret, "***")
    return text[:300]


def release(index: str) -> None:
    """Close the embedded Milvus Lite server of `index` in this process, if one runs.

    Milvus Lite lets one process at a time open a file; call this before another process
    (a `qa` command, a restarted server) opens it. A cluster URI is left alone.
    """
    target = parse_uri(index)
    if target.lite:
        with contextlib.suppress(ImportError):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(target.uri)
