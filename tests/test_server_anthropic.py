"""``POST /v1/messages`` (the Anthropic Messages API) through ``fireside serve``, with the
official anthropic client: text streamed and not (the event sequence, stop reasons, usage),
a system prompt, stop sequences, a tool use round trip on the tool-template copy of the
bundled model (tests/tool_model.py), the API key as x-api-key or Bearer, and errors in
Anthropic's shape."""

from __future__ import annotations

import anthropic
import httpx
import jsonschema
import pytest
from server_tools import start_server
from tool_model import home_with_tool_model

from models import BUNDLED_ID

pytestmark = pytest.mark.slow  # a real server on the bundled model

KEY = "anthropic-test-key-0123456789"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS = [
    {"name": "get_weather", "description": "The current weather in a city",
     "input_schema": WEATHER},
]  # fmt: skip
ASK = [{"role": "user", "content": "What is the capital of France?"}]
# The client has no sampling fields any more; the server still reads them from the body.
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def served(tmp_path_factory, bundled_gguf):
    home = tmp_path_factory.mktemp("home")
    model_id = home_with_tool_model(home, bundled_gguf, tmp_path_factory.mktemp("m"))
    server = start_server(tmp_path_factory.mktemp("logs"), "--threads", "1", "--api-key", KEY,
                          "--parallel", "1", home=home)  # fmt: skip
    yield server, model_id
    assert server.stop() == 0, server.output()


@pytest.fixture(scope="module")
def client(served):
    return anthropic.Anthropic(base_url=served[0].root, api_key=KEY, max_retries=0, timeout=60)


def text_of(message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def test_a_message_and_its_stream_agree(client):
    args = dict(model=BUNDLED_ID, max_tokens=24, extra_body=GREEDY, messages=ASK,
                system="You are a geography teacher. Answer in one sentence.")  # fmt: skip
    reply = client.messages.create(**args)
    assert reply.type == "message" and reply.role == "assistant" and reply.id.startswith("msg_")
    assert reply.model == BUNDLED_ID and reply.content[0].type == "text"
    assert text_of(reply).strip()
    assert reply.stop_reason in ("end_turn", "max_tokens")
    assert reply.usage.input_tokens > 10 and 0 < reply.usage.output_tokens <= 24

    kinds = []
    with client.messages.stream(**args) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_message()
    assert text_of(final) == text_of(reply)
    assert final.stop_reason == reply.stop_reason and final.usage.output_tokens > 0
    raw = [k for k in kinds if k not in ("text",)]
    assert raw[:2] == ["message_start", "content_block_start"]
    assert raw[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "content_block_delta" in raw

    # The system prompt reaches the model's prompt (ten more words, ten or more tokens).
    longer = dict(args, system=args["system"] + " Mention one famous building in the city too.")
    assert client.messages.create(**longer).usage.input_tokens >= reply.usage.input_tokens + 8


def test_stop_reasons(client):
    args = dict(model=BUNDLED_ID, extra_body=GREEDY, messages=ASK)
    short = client.messages.create(max_tokens=3, **args)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 3
    full = text_of(client.messages.create(max_tokens=30, **args))
    word = full.split()[3]
    cut = client.messages.create(max_tokens=30, stop_sequences=["zzqx", word], **args)
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == word
    assert text_of(cut) == full[: full.index(word)]
    with client.messages.stream(max_tokens=30, stop_sequences=[word], **args) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "stop_sequence" and text_of(streamed) == text_of(cut)


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_use_round_trip(served, client, stream):
    model = served[1]
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    args = dict(model=model, max_tokens=60, extra_body=GREEDY, tools=TOOLS,
                tool_choice={"type": "tool", "name": "get_weather"})  # fmt: skip
    if stream:
        with client.messages.stream(messages=ask, **args) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(messages=ask, **args)
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.id.startswith("toolu_")
    jsonschema.validate(use.input, WEATHER)

    history = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 24 degrees C"}]},
    ]  # fmt: skip
    answer = client.messages.create(model=model, max_tokens=30, extra_body=GREEDY, tools=TOOLS,
                                    messages=history)  # fmt: skip
    assert answer.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert answer.usage.input_tokens > first.usage.input_tokens + 10
    assert "<tool_call>" not in text_of(answer)


def test_errors_are_in_anthropics_shape(served, client):
    server, _ = served
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="no-such-model", max_tokens=5, messages=ASK)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "not in the library" in caught.value.body["error"]["message"]

    url = f"{server.root}/v1/messages"
    r = httpx.post(url, json={"model": BUNDLED_ID, "messages": ASK}, headers={"x-api-key": KEY})
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    with pytest.raises(anthropic.BadRequestError, match="no tool support"):
        client.messages.create(model=BUNDLED_ID, max_tokens=5, messages=ASK, tools=TOOLS)

    with pytest.raises(anthropic.AuthenticationError) as caught:
        anthropic.Anthropic(base_url=server.root, api_key="wrong", max_retries=0).messages.create(
            model=BUNDLED_ID, max_tokens=5, messages=ASK
        )
    assert caught.value.body["error"]["type"] == "authentication_error"
    bearer = anthropic.Anthropic(base_url=server.root, auth_token=KEY, max_retries=0)
    assert bearer.messages.create(model=BUNDLED_ID, max_tokens=2, messages=ASK).usage.output_tokens
    r = httpx.post(url, json={"model": BUNDLED_ID, "max_tokens": 2, "messages": ASK},
                   headers={"x-api-key": KEY, "Host": "evil.example"})  # fmt: skip
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"


def test_count_tokens_matches_the_answers_usage(client):
    args = dict(model=BUNDLED_ID, messages=ASK, system="Answer in one sentence.")
    counted = client.messages.count_tokens(**args)
    reply = client.messages.create(max_tokens=2, **args)
    assert counted.input_tokens == reply.usage.input_tokens > 10
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="no-such-model", messages=ASK)
