"""Tool calling through ``fireside serve`` with the official openai client, on a copy of the
bundled model whose GGUF carries a Hermes/Qwen-style tool template (tests/tool_model.py):
forced calls, streamed and not, a full round trip with the tool's result, and refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import openai
import pytest
from server_tools import ROOT, start_server
from tool_model import home_with_tool_model

from models import BUNDLED_ID

pytestmark = pytest.mark.slow

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city",
            "parameters": WEATHER,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The time now in a time zone",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"enum": ["UTC", "CET", "PST"]}},
                "required": ["zone"],
            },
        },
    },
]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
GREEDY = {"temperature": 0, "max_tokens": 80}


@pytest.fixture(scope="module")
def served(tmp_path_factory, bundled_gguf):
    home = tmp_path_factory.mktemp("home")
    model_id = home_with_tool_model(home, bundled_gguf, tmp_path_factory.mktemp("m"))
    server = start_server(tmp_path_factory.mktemp("logs"), "--threads", "1", home=home)
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    yield client, model_id, home
    assert server.stop() == 0, server.output()


def check_call(call, name, schema):
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == name
    jsonschema.validate(json.loads(call.function.arguments), schema)


@pytest.mark.parametrize("choice", ["required", "named"])
def test_a_forced_call_comes_back_as_tool_calls(served, choice):
    client, model, _ = served
    tool_choice = (
        {"type": "function", "function": {"name": "get_time"}} if choice == "named" else "required"
    )
    reply = client.chat.completions.create(
        model=model, messages=ASK, tools=TOOLS, tool_choice=tool_choice, **GREEDY
    )
    out = reply.choices[0]
    assert out.finish_reason == "tool_calls"
    (call,) = out.message.tool_calls
    if choice == "named":
        check_call(call, "get_time", TOOLS[1]["function"]["parameters"])
    else:
        assert call.function.name in ("get_weather", "get_time")


def test_a_streamed_call_is_reassembled_by_the_client(served):
    client, model, _ = served
    with client.chat.completions.stream(
        model=model, messages=ASK, tools=TOOLS, tool_choice="required", **GREEDY
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    out = final.choices[0]
    assert out.finish_reason == "tool_calls"
    (call,) = out.message.tool_calls
    assert call.function.name in ("get_weather", "get_time") and call.id.startswith("call_")
    json.loads(call.function.arguments)


@pytest.mark.parametrize("stream", [False, True])
def test_a_full_round_trip_with_the_tools_result(served, stream):
    client, model, _ = served
    first = client.chat.completions.create(
        model=model,
        messages=ASK,
        tools=TOOLS[:1],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        **GREEDY,
    )
    (call,) = first.choices[0].message.tool_calls
    check_call(call, "get_weather", WEATHER)
    history = [
        *ASK,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
    ]
    body = dict(model=model, messages=history, tools=TOOLS[:1], tool_choice="none", **GREEDY)
    if stream:
        parts, reasons = [], []
        for event in client.chat.completions.create(stream=True, **body):
            for choice in event.choices:
                parts.append(choice.delta.content or "")
                reasons.append(choice.finish_reason)
        text, reason = "".join(parts), reasons[-1]
    else:
        reply = client.chat.completions.create(**body)
        text, reason = reply.choices[0].message.content, reply.choices[0].finish_reason
        assert reply.choices[0].message.tool_calls is None
        # the call and its result are in the prompt the model answered (with tool_choice
        # "none" the functions are not shown: the question alone is the baseline)
        alone = client.chat.completions.create(**{**body, "messages": ASK, "max_tokens": 1})
        assert reply.usage.prompt_tokens > alone.usage.prompt_tokens + 20
    assert reason in ("stop", "length") and text.strip()
    assert "<tool_call>" not in text


def test_a_cut_off_call_is_plain_text_with_a_notice(served):
    client, model, _ = served
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=3
    )
    reply = raw.parse()
    out = reply.choices[0]
    assert out.finish_reason == "length" and out.message.tool_calls is None
    assert out.message.content.startswith("<tool_call>")
    assert "could not read" in raw.headers["X-Fireside-Notice"]


def test_a_template_without_tools_is_refused(served):
    client, _, _ = served
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=BUNDLED_ID, messages=ASK, tools=TOOLS, **GREEDY)
    assert "no tool support" in caught.value.body["message"]


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice", "name one of"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name", "letters"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "not": {}}}}], "tool_choice": "required"}, "tools[0].function.parameters", "'not'"),
        ({"response_format": {"type": "json_object"}}, "response_format", "cannot be combined"),
        ({"functions": [{"name": "f"}]}, "functions", "old names"),
        ({"parallel_tool_calls": "yes"}, "parallel_tool_calls", "true or false"),
    ],
)  # fmt: skip
def test_bad_tool_requests_name_the_field(served, change, param, words):
    client, model, _ = served
    body = {"model": model, "messages": ASK, "tools": TOOLS, **GREEDY, **change}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**body)
    assert caught.value.body["param"] == param and words in caught.value.body["message"]


def test_models_show_says_whether_a_model_takes_tools(served):
    _, model, home = served
    env = dict(os.environ, FIRESIDE_HOME=str(home))
    for ident, expected in ((model, "tools: yes (Hermes/Qwen format"), (BUNDLED_ID, "tools: no")):
        out = subprocess.run(
            [sys.executable, "-m", "app", "models", "show", ident],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout


def test_the_call_reader_returns_what_is_not_a_call_as_text():
    from runtime.tools import CallReader, ToolCall

    reader = CallReader({"get_weather"})
    text = 'Sure. <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    text += ' then <tool_call>{"name": "rm_rf", "arguments": {}}</tool_call> and <tool_c'
    out = []
    for i in range(0, len(text), 7):  # fed in small pieces, as a stream comes
        out.extend(reader.feed(text[i : i + 7]))
    out.extend(reader.finish())
    calls = [x for x in out if isinstance(x, ToolCall)]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]
    plain = "".join(x for x in out if isinstance(x, str))
    assert (
        plain == 'Sure.  then <tool_call>{"name": "rm_rf", "arguments": {}}</tool_call> and <tool_c'
    )
    assert reader.malformed
