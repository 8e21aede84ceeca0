"""``fireside serve`` against the official openai client, over real loopback HTTP.

Three real servers: a plain one (the "cluster"), one with an API key and a CORS origin,
and a front server whose library entry ``cluster`` is a remote engine pointing at the first.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import httpx
import openai
import pytest
from server_tools import start_server

from models import BUNDLED_ID

pytestmark = pytest.mark.slow

KEY = "test-key-0123456789"
KEY_ENV = "FIRESIDE_TEST_UPSTREAM_KEY"
WEB_ORIGIN = "http://localhost:5173"
QUESTION = [{"role": "user", "content": "What is 2+2?"}]
STORY = [{"role": "user", "content": "Write a very long story about a dragon, in ten chapters."}]
GREEDY = {"temperature": 0, "max_tokens": 6}


@contextlib.contextmanager
def fireside_home(home: Path):
    old = os.environ.get("FIRESIDE_HOME")
    os.environ["FIRESIDE_HOME"] = str(home)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("FIRESIDE_HOME", None)  # never "" (the user's own data folder)
        else:
            os.environ["FIRESIDE_HOME"] = old


@pytest.fixture(scope="module")
def upstream_home(tmp_path_factory):
    return tmp_path_factory.mktemp("upstream-home")  # a library with the bundled model only


@pytest.fixture(scope="module")
def server(upstream_home, tmp_path_factory):
    served = start_server(
        tmp_path_factory.mktemp("logs"),
        "--threads",
        "1",
        "--idle-unload",
        "300",
        home=upstream_home,
    )
    yield served
    code = served.stop()
    assert code == 0, served.output()
    assert "Fireside stopped serving" in served.output()


@pytest.fixture(scope="module")
def key_server(upstream_home, tmp_path_factory):
    served = start_server(
        tmp_path_factory.mktemp("logs"),
        "--threads",
        "1",
        "--api-key",
        KEY,
        "--cors-origin",
        WEB_ORIGIN,
        home=upstream_home,
    )
    yield served
    served.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def expected(client):
    """The model's greedy answer, straight from the server (non-streaming)."""
    reply = client.chat.completions.create(model=BUNDLED_ID, messages=QUESTION, **GREEDY)
    return reply


# -- the API -----------------------------------------------------------------------------
def test_models_list_is_the_library(client):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids == [BUNDLED_ID]
    assert client.models.retrieve(BUNDLED_ID).id == BUNDLED_ID


def test_chat_non_streaming_with_usage(expected):
    choice = expected.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = expected.usage
    assert usage.prompt_tokens > 5
    assert 1 <= usage.completion_tokens <= GREEDY["max_tokens"]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_streaming_matches_and_reports_usage(client, expected):
    stream = client.chat.completions.create(
        model=BUNDLED_ID,
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
        **GREEDY,
    )
    pieces, reasons, usage = [], [], None
    for event in stream:
        if event.usage:
            usage = event.usage
        for choice in event.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert "".join(pieces) == expected.choices[0].message.content
    assert reasons == [expected.choices[0].finish_reason]
    assert usage.prompt_tokens == expected.usage.prompt_tokens
    assert usage.completion_tokens == expected.usage.completion_tokens


def test_completions_streaming_and_not(client):
    args = dict(model=BUNDLED_ID, prompt="The capital of France is", temperature=0, max_tokens=5)
    reply = client.completions.create(**args)
    text = reply.choices[0].text
    assert text.strip() and reply.usage.prompt_tokens >= 4
    assert reply.usage.completion_tokens <= 5
    streamed = "".join(e.choices[0].text for e in client.completions.create(stream=True, **args))
    assert streamed == text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": "no-such-model"}, "model"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 10**9}, "max_tokens"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]},
            "messages[1].role",
        ),  # fmt: skip
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 7}, "top_p"),
        ({"seed": -3}, "seed"),
        ({"stop": [1]}, "stop"),
        ({"n": 3}, "n"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_bad_requests_get_400_naming_the_field(server, change, field):
    body = {"model": BUNDLED_ID, "messages": QUESTION, "max_tokens": 4, **change}
    r = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert field.split("[")[0] in error["message"]
    assert error["param"] == field


def test_bad_requests_through_the_openai_client(client):
    with pytest.raises(openai.BadRequestError, match="no-such-model"):
        client.chat.completions.create(model="no-such-model", messages=QUESTION)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model=BUNDLED_ID, messages=QUESTION, max_tokens=-5)
    with pytest.raises(openai.BadRequestError, match="prompt"):
        client.completions.create(model=BUNDLED_ID, prompt=[1, 2, 3])


def test_malformed_bodies(server):
    url = f"{server.base_url}/chat/completions"
    json_type = {"Content-Type": "application/json"}
    r = httpx.post(url, content=b'{"model": ', headers=json_type)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(url, content=b"[1, 2]", headers=json_type)
    assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"]
    r = httpx.post(url, content=b"\xff\xfe", headers=json_type)
    assert r.status_code == 400
    # a web page can send text/plain without a CORS preflight: refused
    r = httpx.post(url, content=b'{"model": "x"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = httpx.get(f"{server.root}/nowhere")
    assert r.status_code == 404 and "error" in r.json()
    deep = b'{"model": "x", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = httpx.post(url, content=deep, headers=json_type)
    assert r.status_code == 400 and "too deeply" in r.json()["error"]["message"]
    huge = b'{"model": "x", "pad": "' + b"a" * (60 * 1024 * 1024) + b'"}'
    r = httpx.post(url, content=huge, headers=json_type, timeout=60)  # no reset mid-send
    assert r.status_code == 413 and "the limit is 8 MB" in r.json()["error"]["message"]
    # and the server still answers
    assert httpx.get(f"{server.base_url}/models").status_code == 200


def test_a_broken_chat_template_is_said_in_a_header(server, upstream_home, bundled_gguf, tmp_path):
    """The model still answers (the generic template); the API says why in a header."""
    from gguf_tools import copy_with_chat_template

    from models import Catalog, import_model

    broken = copy_with_chat_template(bundled_gguf, tmp_path / "broken.gguf", "{% if %}")
    with fireside_home(upstream_home), contextlib.closing(Catalog()) as catalog:
        (record,) = import_model(broken, mode="link", catalog=catalog)
        try:
            for stream in (False, True):
                body = {"model": record.id, "messages": QUESTION, "stream": stream, **GREEDY}
                r = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=120)
                assert r.status_code == 200, r.text
                notice = r.headers["X-Fireside-Notice"]
                assert "chat template is broken" in notice and "generic template" in notice
                assert r.text.strip()
        finally:
            catalog.unregister(record.id)


# -- safety ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost:{port}", 200),
        ("127.0.0.1:{port}", 200),
        ("127.0.0.1", 200),
        ("[::1]:{port}", 200),
        ("app.localhost:{port}", 200),
        ("evil.example.com", 403),
        ("evil.example.com:{port}", 403),
        ("127.0.0.1.nip.io:{port}", 403),
        ("localhost.evil.com", 403),
        ("192.168.1.10:{port}", 403),
    ],
)
def test_host_header_must_be_loopback(server, host, status):
    r = httpx.get(f"{server.base_url}/models", headers={"Host": host.format(port=server.port)})
    assert r.status_code == status, r.text
    if status == 403:
        assert "localhost" in r.json()["error"]["message"]


def test_requests_from_web_pages_are_refused_without_cors(server):
    r = httpx.get(f"{server.base_url}/models", headers={"Origin": "https://evil.example.com"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = httpx.options(
        f"{server.base_url}/chat/completions",
        headers={"Origin": WEB_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers


def test_api_key_is_checked_on_every_request(key_server):
    url = f"{key_server.base_url}/models"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong-key-123"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Basic {KEY}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {KEY}x"}).status_code == 401
    r = httpx.post(
        f"{key_server.base_url}/chat/completions",
        json={"model": BUNDLED_ID, "messages": QUESTION},
    )
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=key_server.base_url, api_key="nope", max_retries=0).models.list()
    good = openai.OpenAI(base_url=key_server.base_url, api_key=KEY, max_retries=0, timeout=120)
    assert [m.id for m in good.models.list().data] == [BUNDLED_ID]
    reply = good.chat.completions.create(model=BUNDLED_ID, messages=QUESTION, max_tokens=2)
    assert reply.usage.completion_tokens >= 1


def test_cors_only_for_configured_origins(key_server):
    url = f"{key_server.base_url}/chat/completions"
    pre = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    r = httpx.options(url, headers={"Origin": WEB_ORIGIN, **pre})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == WEB_ORIGIN
    r = httpx.options(url, headers={"Origin": "http://localhost:9999", **pre})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = httpx.get(
        f"{key_server.base_url}/models",
        headers={"Origin": WEB_ORIGIN, "Authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == WEB_ORIGIN


def test_public_bind_without_key_is_refused(capsys):
    from app.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "API key" in err and "127.0.0.1" in err


# -- cancellation ------------------------------------------------------------------------
def test_client_disconnect_cancels_the_answer(server, expected):
    url = f"{server.base_url}/chat/completions"
    short = {"model": BUNDLED_ID, "messages": QUESTION, **GREEDY}
    with httpx.Client(timeout=120) as c:
        t = time.perf_counter()
        assert c.post(url, json=short).status_code == 200
        alone = time.perf_counter() - t
        long = {"model": BUNDLED_ID, "messages": STORY, "max_tokens": 3000, "seed": 1,
                "temperature": 0.8, "stream": True}  # fmt: skip
        with c.stream("POST", url, json=long) as r:
            assert r.status_code == 200
            seen = 0
            for line in r.iter_lines():
                seen += '"content"' in line
                if seen >= 6:
                    break
        # leaving the block closes the connection mid-answer: the client is gone
        t = time.perf_counter()
        r = c.post(url, json=short)
        waited = time.perf_counter() - t
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == expected.choices[0].message.content
    # the long answer (up to 3000 tokens) was stopped: the engine was free within a second
    assert waited - alone < 1.0, (waited, alone)


# -- remote engines ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def front_home(server, key_server, tmp_path_factory):
    """A second library whose ``cluster`` and ``locked`` entries are remote engines."""
    from app.cli import main

    home = tmp_path_factory.mktemp("front-home")
    with fireside_home(home):
        # no --model: the server offers exactly one, so that one is taken
        assert main(["models", "add-remote", "cluster", server.base_url]) == 0
        assert (
            main(
                [
                    "models",
                    "add-remote",
                    "locked",
                    key_server.root,
                    "--model",
                    BUNDLED_ID,
                    "--api-key-env",
                    KEY_ENV,
                ]  # fmt: skip
            )
            == 0
        )
    return home


def test_add_remote_stores_the_endpoint_but_never_the_key(front_home, server, key_server):
    from models import Catalog

    with fireside_home(front_home), contextlib.closing(Catalog()) as catalog:
        cluster, locked = catalog.get("cluster"), catalog.get("locked")
    assert cluster.format == "remote" and cluster.source == "remote"
    assert cluster.extra == {"url": server.base_url, "remote_model": BUNDLED_ID,
                             "api_key_env": None}  # fmt: skip
    assert locked.extra["url"] == key_server.base_url  # "/v1" added to a bare address
    assert locked.extra["api_key_env"] == KEY_ENV
    for f in front_home.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes()


def test_remote_engine_chats_through_a_second_fireside_server(
    front_home, tmp_path_factory, expected
):
    front = start_server(tmp_path_factory.mktemp("logs"), home=front_home, env={KEY_ENV: KEY})
    try:
        c = openai.OpenAI(base_url=front.base_url, api_key="x", max_retries=0, timeout=120)
        assert {"cluster", "locked", BUNDLED_ID} <= {m.id for m in c.models.list().data}
        reply = c.chat.completions.create(model="cluster", messages=QUESTION, **GREEDY)
        assert reply.choices[0].message.content == expected.choices[0].message.content
        assert reply.usage.prompt_tokens == expected.usage.prompt_tokens  # the cluster's count
        streamed = "".join(
            e.choices[0].delta.content or ""
            for e in c.chat.completions.create(
                model="cluster", messages=QUESTION, stream=True, **GREEDY
            )
            if e.choices
        )
        assert streamed == expected.choices[0].message.content
        # the key comes from the front's environment, and the upstream checks it
        reply = c.chat.completions.create(model="locked", messages=QUESTION, **GREEDY)
        assert reply.choices[0].message.content == expected.choices[0].message.content
    finally:
        assert front.stop() == 0


def test_fireside_chat_uses_a_remote_model(front_home, expected):
    import subprocess
    import sys

    env = dict(os.environ, FIRESIDE_HOME=str(front_home))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "chat",
            "--model",
            "cluster",
            "What is 2+2?",
            "--temperature",
            "0",
            "--max-tokens",
            "6",
        ],  # fmt: skip
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected.choices[0].message.content.strip()


def test_remote_engine_key_errors_and_cancel(front_home, server, expected, monkeypatch):
    from models import Catalog
    from runtime import Engine, GenerationParams, ModelLoadError, RemoteError

    with fireside_home(front_home), contextlib.closing(Catalog()) as catalog:
        cluster, locked = catalog.get("cluster"), catalog.get("locked")
    # (the engine's child process reads the key from the environment it started with)
    monkeypatch.delenv(KEY_ENV, raising=False)
    with Engine() as engine, pytest.raises(ModelLoadError, match=KEY_ENV):
        engine.load(locked)
    monkeypatch.setenv(KEY_ENV, "wrong-key-value")
    with Engine() as engine, pytest.raises(RemoteError, match="refused the API key"):
        engine.load(locked)

    with Engine() as engine:
        info = engine.load(cluster)
        assert info.backend == "remote" and info.context_length == 8192
        chunks = []
        for chunk in engine.stream(STORY, GenerationParams(max_tokens=3000, seed=1)):
            chunks.append(chunk)
            if len(chunks) == 4:
                cancelled_at = time.perf_counter()
                engine.cancel()
        assert chunks[-1].finish_reason == "cancelled"
        assert time.perf_counter() - cancelled_at < 1.0
    # the cluster noticed the dropped connection and stopped too
    t = time.perf_counter()
    r = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": BUNDLED_ID, "messages": QUESTION, **GREEDY},
        timeout=60,
    )
    assert r.json()["choices"][0]["message"]["content"] == expected.choices[0].message.content
    assert time.perf_counter() - t < 2.0


def test_offline_mode_refuses_remote_engines_on_other_machines(monkeypatch):
    """Offline means no network request: a remote engine on another machine is refused in
    words before any connection; one on this machine (loopback) is not the network."""
    from runtime import RemoteError
    from runtime.remote import RemoteBackend
    from runtime.remote_server import list_remote_models, remote_record

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    far = remote_record("cluster", "http://192.0.2.10:8000/v1", "llama-70b")  # unroutable
    with pytest.raises(RemoteError, match="offline mode is on") as refused:
        RemoteBackend(far).load()
    assert "fireside offline off" in str(refused.value) and "Error" not in str(refused.value)
    with pytest.raises(RemoteError, match="offline mode is on"):
        list_remote_models("http://gpu-box.example:8000/v1")
    with pytest.raises(RemoteError) as near:  # loopback: tried (nothing listens on port 9)
        list_remote_models("http://127.0.0.1:9/v1")
    assert "offline" not in str(near.value) and "could not reach" in str(near.value)
    assert "ConnectError" not in str(near.value)
