"""The remote engine passes tools, tool_choice, response_format and thinking through to the
remote server and maps its tool calls and reasoning back; embeddings of a remote model are
forwarded. The "remote" is a real second ``fireside serve`` on 127.0.0.1 with the tool and
thinking template copies of the bundled model; the front server's library has remote
entries for them; everything is asked of the front with the official openai client and
compared with the same request asked of the remote directly."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from chat_templates import THINK_TEMPLATE
from server_tools import start_server
from test_server import fireside_home
from test_server_reasoning import THINK
from test_server_tools import ASK, TOOLS, WEATHER
from tool_model import home_with_tool_model

from models import BUNDLED_ID

pytestmark = pytest.mark.slow
GREEDY = {"temperature": 0, "max_tokens": 80}


@pytest.fixture(scope="module")
def pair(tmp_path_factory, bundled_gguf):
    from app.cli import main

    far_home, folder = tmp_path_factory.mktemp("far"), tmp_path_factory.mktemp("m")
    tools_id = home_with_tool_model(far_home, bundled_gguf, folder)
    think_id = home_with_tool_model(far_home, bundled_gguf, folder, THINK_TEMPLATE, "think")
    logs = tmp_path_factory.mktemp("logs")
    far = start_server(logs, "--threads", "1", home=far_home)
    near_home = tmp_path_factory.mktemp("near")
    try:
        with fireside_home(near_home):
            for name, model in (("far-tools", tools_id), ("far-think", think_id),
                                ("far-bundled", BUNDLED_ID)):  # fmt: skip
                assert main(["models", "add-remote", name, far.base_url, "--model", model]) == 0
        near = start_server(logs, "--threads", "1", home=near_home)
    except BaseException:
        far.stop()
        raise
    direct = openai.OpenAI(base_url=far.base_url, api_key="x", max_retries=0, timeout=120)
    front = openai.OpenAI(base_url=near.base_url, api_key="x", max_retries=0, timeout=120)
    yield front, direct, {"tools": tools_id, "think": think_id}
    assert near.stop() == 0, near.output()
    assert far.stop() == 0, far.output()


def test_tool_calls_come_back_through_the_remote_engine(pair):
    front, direct, ids = pair
    named = {"type": "function", "function": {"name": "get_weather"}}
    body = dict(messages=ASK, tools=TOOLS, tool_choice=named, **GREEDY)
    want = direct.chat.completions.create(model=ids["tools"], **body).choices[0]
    got = front.chat.completions.create(model="far-tools", **body).choices[0]
    assert got.finish_reason == "tool_calls"
    (call,) = got.message.tool_calls
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    assert json.loads(call.function.arguments) == json.loads(
        want.message.tool_calls[0].function.arguments
    )
    # streamed through both servers: name first, then argument deltas, reassembled
    deltas = []
    for event in front.chat.completions.create(model="far-tools", stream=True, **body):
        for choice in event.choices:
            deltas.extend(choice.delta.tool_calls or ())
    assert deltas[0].function.name == "get_weather" and len(deltas) > 2
    joined = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(joined) == json.loads(call.function.arguments)
    # a round trip: the call and its result go back to the remote as the OpenAI API has them
    history = [
        *ASK,
        got.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
    ]
    again = dict(messages=history, tools=TOOLS, tool_choice="none", **GREEDY)
    near_answer = front.chat.completions.create(model="far-tools", **again)
    far_answer = direct.chat.completions.create(model=ids["tools"], **again)
    # the same prompt reached the model (greedy text can differ in the last digits of a
    # reused prompt cache, so the prompt is what is compared)
    assert near_answer.usage.prompt_tokens == far_answer.usage.prompt_tokens
    assert near_answer.choices[0].message.content.strip()
    assert near_answer.choices[0].message.tool_calls is None


def test_the_remote_servers_refusal_is_passed_on(pair):
    front, _, _ = pair
    with pytest.raises(openai.APIError) as caught:  # its template has no tool support
        front.chat.completions.create(model="far-bundled", messages=ASK, tools=TOOLS, **GREEDY)
    assert "no tool support" in str(caught.value)


def test_structured_output_and_reasoning_pass_through(pair):
    front, direct, ids = pair
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"], "additionalProperties": False}  # fmt: skip
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}}
    reply = front.chat.completions.create(
        model="far-bundled", messages=ASK, response_format=fmt, **GREEDY
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)
    body = dict(messages=ASK, extra_body={"grammar": THINK}, **GREEDY)
    got = front.chat.completions.create(model="far-think", **body).choices[0].message
    thought = got.model_extra["reasoning_content"]  # the remote's reasoning_content, kept
    assert thought and thought[0].isupper() and "think>" not in thought + got.content
    assert got.content and got.content[0].isupper()
    off = {"chat_template_kwargs": {"enable_thinking": False}}
    plain = dict(messages=ASK, temperature=0, max_tokens=8)
    near_off = front.chat.completions.create(model="far-think", extra_body=off, **plain)
    far_off = direct.chat.completions.create(model=ids["think"], extra_body=off, **plain)
    assert near_off.usage.prompt_tokens == far_off.usage.prompt_tokens


def test_embeddings_of_a_remote_model_are_forwarded(pair):
    front, direct, _ = pair
    texts = ["cat", "feline"]
    got = front.embeddings.create(model="far-bundled", input=texts)
    want = direct.embeddings.create(model=BUNDLED_ID, input=texts)
    assert [d.embedding for d in got.data] == [d.embedding for d in want.data]
    assert got.usage.prompt_tokens == want.usage.prompt_tokens > 0
