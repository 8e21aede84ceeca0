"""``POST /v1/responses`` (the OpenAI Responses API) through ``fireside serve`` with the
official openai client's ``client.responses``: text streamed and not, instructions, the
output cut at max_output_tokens, a function tool round trip on the tool-template copy of the
bundled model (tests/tool_model.py), and plain refusals."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest
from server_tools import start_server
from tool_model import home_with_tool_model

from models import BUNDLED_ID

pytestmark = pytest.mark.slow  # a real server on the bundled model

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS = [{"type": "function", "name": "get_weather", "description": "The current weather in a city",
          "parameters": WEATHER}]  # fmt: skip
ASK = "What is the capital of France?"


@pytest.fixture(scope="module")
def served(tmp_path_factory, bundled_gguf):
    home = tmp_path_factory.mktemp("home")
    model_id = home_with_tool_model(home, bundled_gguf, tmp_path_factory.mktemp("m"))
    server = start_server(tmp_path_factory.mktemp("logs"), "--threads", "1", home=home)
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)
    yield server, client, model_id
    assert server.stop() == 0, server.output()


def test_text_streamed_and_not_agree(served):
    _, client, _ = served
    args = dict(model=BUNDLED_ID, input=ASK, instructions="Answer in one sentence.",
                temperature=0, max_output_tokens=24)  # fmt: skip
    reply = client.responses.create(**args)
    assert reply.object == "response" and reply.id.startswith("resp_")
    assert reply.status in ("completed", "incomplete") and reply.output_text.strip()
    assert reply.usage.input_tokens > 10 and 0 < reply.usage.output_tokens <= 24
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens

    kinds, deltas = [], []
    for event in client.responses.create(stream=True, **args):
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        if event.type in ("response.completed", "response.incomplete"):
            final = event.response
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert "response.output_item.added" in kinds and "response.output_text.done" in kinds
    assert "".join(deltas) == reply.output_text == final.output_text

    with client.responses.stream(**args) as stream:  # the client's own event accumulator
        assert stream.get_final_response().output_text == reply.output_text


def test_max_output_tokens_is_reported_incomplete(served):
    _, client, _ = served
    reply = client.responses.create(model=BUNDLED_ID, input=ASK, temperature=0, max_output_tokens=3)
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_output_tokens"
    assert reply.usage.output_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_tool_round_trip(served, stream):
    _, client, model = served
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    args = dict(model=model, tools=TOOLS, temperature=0, max_output_tokens=60,
                tool_choice={"type": "function", "name": "get_weather"})  # fmt: skip
    if stream:
        with client.responses.stream(input=ask, **args) as s:
            first = s.get_final_response()
    else:
        first = client.responses.create(input=ask, **args)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    jsonschema.validate(json.loads(call.arguments), WEATHER)

    history = [*ask, {"type": "function_call", "call_id": call.call_id, "name": call.name,
                      "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id,
                "output": "Sunny, 24 degrees C"}]  # fmt: skip
    answer = client.responses.create(model=model, tools=TOOLS, temperature=0,
                                     max_output_tokens=30, input=history)  # fmt: skip
    assert answer.usage.input_tokens > first.usage.input_tokens + 10
    assert "<tool_call>" not in answer.output_text


def test_refusals_are_plain(served):
    server, client, _ = served
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=BUNDLED_ID, input=ASK, previous_response_id="resp_1")
    assert caught.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError, match="built-in tools"):
        client.responses.create(model=BUNDLED_ID, input=ASK, tools=[{"type": "web_search"}])
    with pytest.raises(openai.BadRequestError, match="no tool support"):
        client.responses.create(model=BUNDLED_ID, input=ASK, tools=TOOLS)
    r = httpx.post(f"{server.base_url}/responses", json={"model": BUNDLED_ID, "input": ASK},
                   headers={"Host": "evil.example"})  # fmt: skip
    assert r.status_code == 403
