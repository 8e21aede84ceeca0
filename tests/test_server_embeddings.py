"""``POST /v1/embeddings`` through ``fireside serve`` on the bundled model, with the official
openai client: vectors of the model's width that rank meaning sensibly, base64 that decodes to
the same floats, token counts, refusals, and the guards (API key, Host) in front of it."""

from __future__ import annotations

import base64
import math
import struct

import httpx
import openai
import pytest
from server_tools import start_server

from models import BUNDLED_ID

pytestmark = pytest.mark.slow  # a real server on the bundled model

KEY = "embed-test-key-0123456789"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = start_server(
        tmp_path_factory.mktemp("logs"),
        "--threads",
        "1",
        "--api-key",
        KEY,
        home=tmp_path_factory.mktemp("home"),
    )
    yield server
    assert server.stop() == 0, server.output()


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served.base_url, api_key=KEY, max_retries=0, timeout=60)


def cos(a, b):
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def width(gguf_path) -> int:
    import gguf

    reader = gguf.GGUFReader(gguf_path, "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    return int(reader.get_field(f"{arch}.embedding_length").contents())


def test_vectors_rank_meaning(client, bundled_gguf):
    # Sentences: a 135M chat model's mean-pooled vectors rank these (0.89 vs 0.74 here), but
    # not bare words ("cat"/"feline" 0.877 vs "cat"/"stock market" 0.879).
    texts = [
        "The cat sleeps on the sofa.",
        "A feline naps on the couch.",
        "The stock market fell sharply today.",
    ]
    reply = client.embeddings.create(model=BUNDLED_ID, input=texts)
    assert reply.object == "list" and reply.model == BUNDLED_ID
    assert [d.index for d in reply.data] == [0, 1, 2]
    cat, feline, stocks = (d.embedding for d in reply.data)
    assert len(cat) == len(feline) == len(stocks) == width(bundled_gguf)
    assert cos(cat, feline) > cos(cat, stocks)
    assert reply.usage.prompt_tokens >= 3 and reply.usage.total_tokens == reply.usage.prompt_tokens

    one = client.embeddings.create(model=BUNDLED_ID, input=texts[0], encoding_format="float")
    assert len(one.data) == 1
    assert cos(one.data[0].embedding, cat) == pytest.approx(1.0, abs=1e-4)


def test_base64_decodes_to_the_same_floats(served, client):
    floats = client.embeddings.create(model=BUNDLED_ID, input="a quiet fireside").data[0]
    raw = httpx.post(
        f"{served.base_url}/embeddings",
        json={"model": BUNDLED_ID, "input": "a quiet fireside", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {KEY}"},
    ).json()["data"][0]["embedding"]
    blob = base64.b64decode(raw)
    decoded = struct.unpack(f"<{len(blob) // 4}f", blob)
    assert decoded == pytest.approx(floats.embedding, abs=1e-6)


def test_refusals_are_plain(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=BUNDLED_ID, input="")
    assert "empty" in str(err.value) and "Error" not in err.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="at most 2048 tokens a text"):
        client.embeddings.create(model=BUNDLED_ID, input=["short", "word " * 3000])
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="no-such-model", input="cat")
    assert err.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=BUNDLED_ID, input=[[1, 2, 3]])
    assert err.value.body["param"] == "input"


def test_guards_apply(served):
    url = f"{served.base_url}/embeddings"
    body = {"model": BUNDLED_ID, "input": "cat"}
    assert httpx.post(url, json=body).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served.base_url, api_key="nope", max_retries=0).embeddings.create(
            model=BUNDLED_ID, input="cat"
        )
    auth = {"Authorization": f"Bearer {KEY}", "Host": "evil.example"}
    assert httpx.post(url, json=body, headers=auth).status_code == 403


def test_engines_that_cannot_embed_are_named(bundled_gguf):
    from models.records import ModelRecord
    from runtime import InvalidParameters
    from runtime.embed import Embedder

    embedder = Embedder(idle_unload_s=None)
    try:
        for fmt, engine in (
            ("mlx", "MLX"),
            ("hf-safetensors", "PyTorch"),
        ):
            record = ModelRecord(id="m", name="Some Model", format=fmt, path="/x", source="t")
            with pytest.raises(InvalidParameters, match=engine):
                embedder.embed(record, "cat")
    finally:
        embedder.close()


def test_an_idle_engine_is_unloaded_and_a_dropped_embedder_lets_go(bundled_gguf):
    import gc
    import threading
    import time

    from models.records import ModelRecord
    from runtime.embed import Embedder

    record = ModelRecord(id="b", name="Bundled", format="gguf", path=str(bundled_gguf), source="t")
    embedder = Embedder(idle_unload_s=0.4)
    assert len(embedder.embed(record, ["one", "two"])["data"]) == 2
    assert embedder._server is not None
    deadline = time.monotonic() + 10
    while embedder._server is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert embedder._server is None  # unloaded while idle; the next request loads again
    assert embedder.embed(record, "three")["usage"]["prompt_tokens"] >= 1

    reapers = lambda: [t for t in threading.enumerate() if t.name == "fireside-embed-reaper"]  # noqa: E731
    before = len(reapers())
    del embedder
    gc.collect()
    deadline = time.monotonic() + 5
    while len(reapers()) >= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(reapers()) < before
