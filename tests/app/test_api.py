"""The HTTP API beside the page (ui/api.py), on a real server on loopback: `POST /api/ask`
with httpx, the OpenAI-compatible /v1 with the official `openai` client."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn
from conftest import ANSWERABLE, HASH, OFF_TOPIC
from fake_llm import FakeLLM

import qa
from ui.api import MAX_BODY_BYTES, _host_name, build_api, loopback_only, read_api_key
from ui.service import Service

KEY = "sk-test-key"
QUESTION = "赣服通集成了多少项服务?"
FOLLOW_UP = "它有多少用户?"


@contextmanager
def serving(app):
    """`app` served by uvicorn in a thread on a free loopback port; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def service(_built_template: Path, bot: qa.Assistant) -> Service:
    return Service(_built_template / "corpus", _built_template / "index", HASH, bot)


@pytest.fixture(scope="module")
def url(service: Service):
    with serving(build_api(service, KEY)) as base:
        yield base


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def user(*questions: str) -> list[dict]:
    return [{"role": "user", "content": q} for q in questions]


def complete(client: openai.OpenAI, messages: list[dict]):
    return client.chat.completions.create(model="qa", messages=messages)


def streamed(client: openai.OpenAI, messages: list[dict]) -> tuple[str, str, dict]:
    """The streamed content, the streamed draft (`reasoning_content`) and the `qa` answer."""
    content, draft, answer = [], [], None
    for chunk in client.chat.completions.create(model="qa", messages=messages, stream=True):
        delta = chunk.choices[0].delta
        content.append(delta.content or "")
        draft.append((delta.model_extra or {}).get("reasoning_content") or "")
        answer = (chunk.model_extra or {}).get("qa") or answer
    return "".join(content), "".join(draft), answer


# -- /v1, with the openai client ---------------------------------------------------------


def test_the_knowledge_base_is_listed_as_one_model(client):
    assert [m.id for m in client.models.list()] == ["qa"]


def test_a_completion_is_the_answer_with_its_numbered_sources(client, service):
    response = complete(client, user(QUESTION))
    answer = service.ask_after(QUESTION, []).answer
    c = answer.citations[0]
    assert response.choices[0].message.content == (
        f"{answer.text}\n\n[1] {c.title} — {c.article_id}, 第{c.paragraph + 1}段: {c.sentence}"
    )
    assert ANSWERABLE[QUESTION][1] in c.sentence and "[1]" in answer.text
    extra = response.model_extra["qa"]  # the structured answer, which clients ignore
    assert extra["citations"][0]["sentence"] == c.sentence and extra["found"]


def test_streaming_gives_the_same_content(client):
    for question in (QUESTION, OFF_TOPIC[0]):
        content, draft, answer = streamed(client, user(question))
        assert content == complete(client, user(question)).choices[0].message.content
        assert draft == "" and answer["question"] == question  # no model: no draft


def test_a_follow_up_takes_its_subject_from_the_earlier_user_messages(client):
    first = complete(client, user(QUESTION)).choices[0].message.content
    messages = [*user(QUESTION), {"role": "assistant", "content": first}, *user(FOLLOW_UP)]
    response = complete(client, messages)
    assert response.model_extra["qa"]["searched"] == "赣服通有多少用户?"
    assert "900万用户" in response.choices[0].message.content.split("\n\n[1]")[1]
    assert "900万用户" not in complete(client, user(FOLLOW_UP)).choices[0].message.content


def test_a_refused_question_answers_the_refusal(client, bot):
    response = complete(client, user(OFF_TOPIC[0]))
    assert response.choices[0].message.content == bot.ask(OFF_TOPIC[0]).text
    assert not response.model_extra["qa"]["found"]


def test_a_wrong_or_missing_key_is_refused(url):
    wrong = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    with pytest.raises(openai.AuthenticationError):
        complete(wrong, user(QUESTION))
    bare = httpx.post(f"{url}/api/ask", json={"question": QUESTION})
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"


def test_bad_chat_requests_get_an_openai_error(client):
    with pytest.raises(openai.BadRequestError) as caught:
        complete(client, [{"role": "system", "content": "你好"}])
    assert "user" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        complete(client, user("   "))


def test_a_generated_reply_streams_its_draft_then_the_verified_answer(service, bot):
    with FakeLLM(pause=0.0) as llm:
        settings = dataclasses.replace(bot.settings, llm_url=llm.url, llm_model="partly")
        model_service = Service(
            service.corpus, service.index, settings, qa.Assistant(bot.index, settings, bot.embedder)
        )
        with serving(build_api(model_service, KEY)) as base:
            client = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
            content, draft, answer = streamed(client, user("赣服通有多少用户?"))
            whole = complete(client, user("赣服通有多少用户?")).choices[0].message.content
    # the draft holds the sentence verification drops; the content never does
    assert "全国用户最多" in draft and answer["generated"] and answer["unsupported"]
    assert content == whole and "900万用户" in content and "全国用户最多" not in content


# -- /api/ask, with httpx ----------------------------------------------------------------


def ask(url: str, body=None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEY}"}
    return httpx.post(f"{url}/api/ask", json=body, headers=headers, **kwargs)


def without_time(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "seconds"}


def test_api_ask_is_the_page_apis_answer(url, service):
    for question, history in ((QUESTION, []), (FOLLOW_UP, [QUESTION]), (OFF_TOPIC[1], [])):
        response = ask(url, {"question": question, "history": history})
        assert response.status_code == 200
        expected = service.ask_after(question, history).answer.to_dict()
        assert without_time(response.json()) == without_time(expected)
    assert "900万用户" in ask(url, {"question": FOLLOW_UP, "history": [QUESTION]}).text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"question": 5},
        {"question": "   "},
        {"question": QUESTION, "history": "赣服通"},
        {"question": QUESTION, "history": [1, 2]},
        {"question": QUESTION, "history": ""},
        {"question": None},
        [QUESTION],
        "赣服通",
    ],
)
def test_api_ask_bad_input_is_a_400_that_says_what_is_wrong(url, body):
    response = ask(url, body)
    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_api_ask_not_json_and_too_big(url):
    for body in (b"{question", b"[" * 100_000):  # the second nests beyond Python's stack
        response = ask(url, content=body, timeout=10)
        assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    huge = {"question": QUESTION, "history": ["赣" * 1000] * (MAX_BODY_BYTES // 3000 + 1)}
    assert ask(url, huge).status_code == 413


# -- without a key ------------------------------------------------------------------------


def test_without_a_key_only_a_loopback_server_answers(service):
    with serving(build_api(service, None, "127.0.0.1")) as base:
        assert httpx.post(f"{base}/api/ask", json={"question": QUESTION}).status_code == 200
    with serving(build_api(service, None, "0.0.0.0")) as base:
        response = httpx.get(f"{base}/v1/models")
        assert response.status_code == 403 and "QA_API_KEY" in response.json()["error"]["message"]
        assert httpx.post(f"{base}/api/ask", json={"question": QUESTION}).status_code == 403


def test_without_a_key_a_rebound_host_name_is_refused(service):
    """DNS rebinding: a hostile page whose own name now points at 127.0.0.1 sends that name
    as Host; without a key only loopback names are answered."""
    with serving(build_api(service, None, "127.0.0.1")) as base:
        port = base.rsplit(":", 1)[1]
        for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            answered = httpx.get(f"{base}/v1/models", headers={"Host": host})
            assert answered.status_code == 200, host
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
            refused = httpx.post(
                f"{base}/api/ask", json={"question": QUESTION}, headers={"Host": host}
            )
            assert refused.status_code == 403, host
            assert refused.json()["error"]["code"] == "host_not_allowed"
    with serving(build_api(service, KEY, "127.0.0.1")) as base:  # a key decides alone
        headers = {"Host": "evil.example", "Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{base}/v1/models", headers=headers).status_code == 200


def test_the_key_comes_from_the_file_or_qa_api_key(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_API_KEY", " sk-env ")
    assert read_api_key() == "sk-env"
    (tmp_path / "key").write_text("sk-file\n", encoding="utf-8")
    assert read_api_key(tmp_path / "key") == "sk-file"
    monkeypatch.delenv("QA_API_KEY")
    assert read_api_key() is None
    for bad in ("", "密钥"):
        (tmp_path / "key").write_text(bad, encoding="utf-8")
        with pytest.raises(qa.QAError):
            read_api_key(tmp_path / "key")
    with pytest.raises(qa.QAError, match="Cannot read"):
        read_api_key(tmp_path / "missing")


def test_without_a_key_every_route_of_the_served_app_wants_a_loopback_host(service):
    """serve() guards the page and Gradio's own API too (a rebinding page could read
    answers through /gradio_api and upload through the page otherwise)."""
    from ui.app import mount
    from ui.page import build_app

    demo = build_app(service)
    app = loopback_only(mount(build_api(service, None), demo, "127.0.0.1", 7860, None))
    with serving(app) as base:
        for path in ("/config", "/gradio_api/info", "/v1/models"):
            assert httpx.get(f"{base}{path}").status_code == 200, path
            refused = httpx.get(f"{base}{path}", headers={"Host": "evil.example"})
            assert refused.status_code == 403 and "QA_API_KEY" in refused.text, path
        call = httpx.post(
            f"{base}/gradio_api/call/ask",
            json={"data": [QUESTION, None]},
            headers={"Host": "evil.example:7860", "Origin": "http://evil.example:7860"},
        )
        assert call.status_code == 403


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost", "localhost"), ("LOCALHOST:7860", "localhost"), ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:7860", "::1"), ("[::1]", "::1"), ("127.0.0.1:80@evil", ""), ("[::1]evil", ""),
        ("[::1]:80@evil.com", ""), ("localhost\t", ""), ("", ""), ("a b", ""),
    ],
)  # fmt: skip
def test_host_names_are_read_strictly(header, name):
    assert _host_name(header) == name


def test_a_page_with_a_login_keeps_the_api_closed_without_a_key(service):
    """QA_AUTH without QA_API_KEY: the owner takes the articles to be behind the login."""
    with serving(build_api(service, None, "127.0.0.1", login=True)) as base:
        response = ask(base, {"question": QUESTION})
        assert response.status_code == 403 and "QA_API_KEY" in response.json()["error"]["message"]
        assert httpx.get(f"{base}/v1/models").status_code == 403
    with serving(build_api(service, KEY, "127.0.0.1", login=True)) as base:  # the key opens it
        assert ask(base, {"question": QUESTION}).status_code == 200


def test_stream_is_only_true_when_it_is_true(url):
    for value in ("false", 0, None, "yes"):
        body = {"model": "qa", "messages": user(QUESTION), "stream": value}
        response = httpx.post(
            f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert response.headers["content-type"].startswith("application/json"), value


def test_the_page_and_the_api_share_one_server(service):
    """serve()'s setup: the page (with its login) mounted at / on the API app."""
    from ui.app import mount
    from ui.page import build_app

    demo = build_app(service)
    demo.queue(default_concurrency_limit=1)
    app = mount(build_api(service, KEY), demo, "127.0.0.1", 7860, ("ann", "secret-pw"))
    with serving(app) as base, httpx.Client(base_url=base) as page:
        assert httpx.get(f"{base}/config").status_code == 401  # the page wants its login
        assert page.post("/login", data={"username": "ann", "password": "secret-pw"}).is_success
        assert page.get("/config").status_code == 200
        # the API wants its key, not the login
        response = ask(base, {"question": QUESTION})
        assert response.status_code == 200 and response.json()["found"]
        assert page.post("/api/ask", json={"question": QUESTION}).status_code == 401
        # the page's own API still runs through Gradio's queue, and answers the same
        call = page.post("/gradio_api/call/ask", json={"data": [FOLLOW_UP, [QUESTION]]})
        events = page.get(f"/gradio_api/call/ask/{call.json()['event_id']}", timeout=30).text
        assert "event: complete" in events, events
        data = json.loads(events.split("event: complete\ndata: ")[1].splitlines()[0])
        same = ask(base, {"question": FOLLOW_UP, "history": [QUESTION]}).json()
        assert without_time(data[0]) == without_time(same)


def test_qa_serve_with_an_unreadable_key_file_stops_with_one_line(capsys, tmp_path):
    from qa.cli import main

    code = main(["serve", "--api-key-file", str(tmp_path / "nokey"), "--index", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("qa: error: Cannot read the API key file")
    assert err.count("\n") == 1


def test_before_any_article_the_api_says_to_upload_one(tmp_path):
    from ui.service import NO_INDEX

    empty = Service(tmp_path / "corpus", tmp_path / "index", HASH, None)
    with serving(build_api(empty, KEY)) as base:
        response = ask(base, {"question": QUESTION})
        assert response.status_code == 503 and response.json()["error"]["message"] == NO_INDEX
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError, match="请先"):
                client.chat.completions.create(model="qa", messages=user(QUESTION), stream=stream)


# -- the real `qa serve` process, with the openai client ---------------------------------


def test_qa_serve_answers_the_openai_client(built_index, bot, tmp_path):
    """`qa serve` itself (a process on a loopback port, a key set), as a chat app sees it:
    the model list, a completion, the same streamed, a follow-up through the history, a
    refused question, a wrong key."""
    from ui.devserver import running

    corpus = built_index.parent / "corpus"
    with running(
        corpus, built_index, "hash", log=tmp_path / "serve.log", env={"QA_API_KEY": KEY}
    ) as url:
        served = openai.OpenAI(base_url=f"{url.rstrip('/')}/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in served.models.list()] == ["qa"]
        reply = complete(served, user(QUESTION)).choices[0].message.content
        assert reply == bot.ask(QUESTION).to_text()
        content, _, answer = streamed(served, user(QUESTION))
        assert content == reply and answer["found"]
        follow_up = complete(served, user(QUESTION, FOLLOW_UP)).model_extra["qa"]
        assert follow_up["searched"] != FOLLOW_UP and follow_up["found"]
        refused = complete(served, user(OFF_TOPIC[0])).model_extra["qa"]
        assert not refused["found"] and refused["citations"] == []
        wrong = openai.OpenAI(base_url=f"{url.rstrip('/')}/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
