"""Tool-call formats other than Hermes, and arguments streamed as they are written: copies
of the bundled model with Llama 3.x JSON and Mistral ``[TOOL_CALLS]`` templates
(tests/chat_templates.py) beside the Hermes one, through ``fireside serve`` with the
official openai client; and the call reader of each format fed in small pieces."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from chat_templates import LLAMA3_TEMPLATE, MISTRAL_ARGS_TEMPLATE, MISTRAL_TEMPLATE
from server_tools import start_server
from test_server_tools import ASK, TOOLS, WEATHER
from tool_model import TOOL_TEMPLATE, home_with_tool_model

TEMPLATES = {"hermes": TOOL_TEMPLATE, "llama3": LLAMA3_TEMPLATE, "mistral": MISTRAL_TEMPLATE}
GREEDY = {"temperature": 0, "max_tokens": 80}


@pytest.fixture(scope="module")
def served(tmp_path_factory, bundled_gguf):
    home = tmp_path_factory.mktemp("home")
    folder = tmp_path_factory.mktemp("m")
    templates = {**TEMPLATES, "mistral-args": MISTRAL_ARGS_TEMPLATE}
    ids = {
        fmt: home_with_tool_model(home, bundled_gguf, folder, template, fmt)
        for fmt, template in templates.items()
    }
    server = start_server(tmp_path_factory.mktemp("logs"), "--threads", "1", home=home)
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    yield client, ids, home
    assert server.stop() == 0, server.output()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(TEMPLATES))
def test_each_format_gives_forced_calls_streamed_as_argument_deltas(served, fmt):
    client, ids, _ = served
    named = {"type": "function", "function": {"name": "get_weather"}}
    body = dict(model=ids[fmt], messages=ASK, tools=TOOLS, tool_choice=named, **GREEDY)
    reply = client.chat.completions.create(**body)
    out = reply.choices[0]
    assert out.finish_reason == "tool_calls", out.message
    (call,) = out.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    # required: a call of one of the functions
    required = client.chat.completions.create(**{**body, "tool_choice": "required"})
    assert required.choices[0].finish_reason == "tool_calls"
    assert required.choices[0].message.tool_calls[0].function.name in ("get_weather", "get_time")
    # streamed: the id and name first, then the arguments in several deltas
    deltas = []
    for event in client.chat.completions.create(stream=True, **body):
        for choice in event.choices:
            deltas.extend(choice.delta.tool_calls or ())
    assert deltas[0].id.startswith("call_") and deltas[0].function.name == "get_weather"
    pieces = [d.function.arguments for d in deltas[1:]]
    assert len(pieces) > 2 and all(d.index == 0 and d.id is None for d in deltas[1:])
    assert json.loads("".join(pieces)) == json.loads(call.function.arguments)
    # the client's stream helper reassembles them into the same call
    with client.chat.completions.stream(**body) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion().choices[0]
    assert final.finish_reason == "tool_calls"
    assert final.message.tool_calls[0].function.arguments == "".join(pieces)


@pytest.mark.slow
def test_models_show_names_the_format(served, capsys):
    from test_server import fireside_home

    from app.cli import main

    _, ids, home = served
    for fmt, words in (("llama3", "Llama 3.x JSON"), ("mistral", "Mistral format")):
        with fireside_home(home):
            assert main(["models", "show", ids[fmt]]) == 0
        assert f"tools: yes ({words}" in capsys.readouterr().out


def _read(fmt, text, incremental=False, names=("get_weather", "get_time"), step=5):
    from runtime.tools import CallReader

    reader = CallReader(set(names), fmt, incremental)
    out = []
    for i in range(0, len(text), step):
        out.extend(reader.feed(text[i : i + step]))
    out.extend(reader.finish())
    return out, reader.malformed


def _calls(events):
    from runtime.tools import ToolCall

    return [(e.name, json.loads(e.arguments)) for e in events if isinstance(e, ToolCall)]


def _text(events):
    return "".join(e for e in events if isinstance(e, str))


@pytest.mark.parametrize("incremental", [False, True])
def test_the_llama3_and_mistral_readers_read_calls_in_pieces(incremental):
    two = [("get_weather", {"city": "Oslo"}), ("get_time", {"zone": "UTC"})]
    llama = '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}; '
    llama += '{"name": "get_time", "parameters": {"zone": "UTC"}}'
    events, bad = _read("llama3", llama, incremental)
    assert _calls(events) == two and not bad and not _text(events).strip()
    mistral = 'Sure.[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}}, '
    mistral += '{"arguments": {"zone": "UTC"}, "name": "get_time"}] done'
    events, bad = _read("mistral", mistral, incremental)
    assert _calls(events) == two and not bad
    assert _text(events) == "Sure. done"


def test_what_is_not_a_call_stays_text():
    events, bad = _read("llama3", "The weather in Oslo is {cold}.")
    assert _text(events) == "The weather in Oslo is {cold}." and not bad and not _calls(events)
    events, bad = _read("llama3", '{"name": "rm_rf", "parameters": {}}')
    assert _text(events) == '{"name": "rm_rf", "parameters": {}}' and bad
    events, bad = _read("mistral", '[TOOL_CALLS][{"name": "get_weather", "arguments": 3}]')
    assert _text(events).startswith("[TOOL_CALLS]") and bad and not _calls(events)


def test_incremental_reading_gives_arguments_before_the_call_closes():
    from runtime.tools import ArgsPiece, CallReader, CallStart

    reader = CallReader({"get_weather"}, "hermes", incremental=True)
    first = list(reader.feed('<tool_call>\n{"name": "get_weather", "arguments": {"ci'))
    assert isinstance(first[0], CallStart) and first[0].name == "get_weather"
    assert [e.text for e in first[1:]] == ['{"ci'] and isinstance(first[1], ArgsPiece)
    rest = list(reader.feed('ty": "Oslo"}}\n</tool_call> after'))
    rest += list(reader.finish())
    assert _calls(rest) == [("get_weather", {"city": "Oslo"})]
    assert _text(rest) == " after"
    cut = CallReader({"get_weather"}, "hermes", incremental=True)
    events = [*cut.feed('<tool_call>\n{"name": "get_weather", "arguments": {"ci'), *cut.finish()]
    assert cut.malformed and events[-1].arguments == '{"ci'  # cut off: said so


@pytest.mark.slow
def test_anthropic_and_responses_streams_carry_argument_deltas(served):
    import anthropic

    client, ids, _ = served
    root = str(client.base_url).rstrip("/").removesuffix("/v1")
    claude = anthropic.Anthropic(base_url=root, api_key="unused", max_retries=0)
    tool = {"name": "get_weather", "description": "The weather", "input_schema": WEATHER}
    with claude.messages.stream(
        model=ids["mistral"], max_tokens=80, messages=ASK, tools=[tool],
        tool_choice={"type": "tool", "name": "get_weather"}, extra_body={"temperature": 0},
    ) as stream:  # fmt: skip
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert kinds.count("input_json_delta") > 2 and final.stop_reason == "tool_use"
    (use,) = [b for b in final.content if b.type == "tool_use"]
    jsonschema.validate(use.input, WEATHER)
    fn = {"type": "function", "name": "get_weather", "parameters": WEATHER}
    with client.responses.stream(
        model=ids["llama3"], input="What is the weather in Paris?", tools=[fn],
        tool_choice={"type": "function", "name": "get_weather"}, temperature=0,
        max_output_tokens=80,
    ) as stream:  # fmt: skip
        deltas = [e for e in stream if e.type == "response.function_call_arguments.delta"]
        done = stream.get_final_response()
    (call,) = [item for item in done.output if item.type == "function_call"]
    assert len(deltas) > 2 and "".join(d.delta for d in deltas) == call.arguments
    jsonschema.validate(json.loads(call.arguments), WEATHER)


def test_each_template_is_told_apart_by_its_markers():
    from runtime.tools import describe_support, tool_format

    assert [tool_format(t) for t in TEMPLATES.values()] == list(TEMPLATES)
    assert tool_format(MISTRAL_ARGS_TEMPLATE) == "mistral-args"
    assert "[TOOL_CALLS]name[ARGS]" in describe_support(MISTRAL_ARGS_TEMPLATE)
    assert tool_format("{{ messages }}") is None
    assert tool_format("{% for t in tools %}<function={{ t }}>{% endfor %}") == "other"


@pytest.mark.parametrize("incremental", [False, True])
def test_the_newer_mistral_reader_reads_name_args_calls(incremental):
    text = 'Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}[TOOL_CALLS]get_time[ARGS]'
    text += '{"zone": "UTC"} done'
    events, bad = _read("mistral-args", text, incremental, step=4)
    assert _calls(events) == [("get_weather", {"city": "Oslo"}), ("get_time", {"zone": "UTC"})]
    assert _text(events) == "Sure. done" and not bad
    events, bad = _read("mistral-args", "[TOOL_CALLS]rm_rf[ARGS]{}", incremental)
    assert bad and not _calls(events) and "rm_rf" in _text(events)


@pytest.mark.slow
def test_the_newer_mistral_format_gives_a_named_call_and_refuses_required(served):
    client, ids, _ = served
    named = {"type": "function", "function": {"name": "get_weather"}}
    body = dict(model=ids["mistral-args"], messages=ASK, tools=TOOLS, **GREEDY)
    deltas = []
    for event in client.chat.completions.create(stream=True, tool_choice=named, **body):
        for choice in event.choices:
            deltas.extend(choice.delta.tool_calls or ())
    assert deltas[0].function.name == "get_weather" and len(deltas) > 2
    jsonschema.validate(json.loads("".join(d.function.arguments for d in deltas)), WEATHER)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(tool_choice="required", **body)
    assert "name it in tool_choice" in caught.value.body["message"]
    one = client.chat.completions.create(**{**body, "tools": TOOLS[:1]}, tool_choice="required")
    assert one.choices[0].message.tool_calls[0].function.name == "get_weather"
