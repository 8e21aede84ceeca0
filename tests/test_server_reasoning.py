"""Reasoning through ``fireside serve`` with the official openai and anthropic clients, on a
copy of the bundled model whose GGUF carries a Qwen3-style thinking template
(tests/chat_templates.py). A grammar makes the 135M model write ``<think>...</think>``
and then an answer, deterministically (greedy): the thought must come back apart from the
answer in each API's shape, streamed and not, and turning thinking off must change the
prompt the way the template says."""

from __future__ import annotations

import anthropic
import openai
import pytest
from chat_templates import THINK_TEMPLATE
from server_tools import start_server
from tool_model import home_with_tool_model

from models import BUNDLED_ID

pytestmark = pytest.mark.slow

THINK = 'root ::= "<think>" [A-Z] [a-z ,]{8,40} "</think>" [A-Z] [a-z ,.]{4,30}'
ASK = [{"role": "user", "content": "What is two plus two?"}]
GREEDY = {"temperature": 0, "max_tokens": 90}


@pytest.fixture(scope="module")
def served(tmp_path_factory, bundled_gguf):
    home = tmp_path_factory.mktemp("home")
    folder = tmp_path_factory.mktemp("m")
    model_id = home_with_tool_model(home, bundled_gguf, folder, THINK_TEMPLATE, "think")
    server = start_server(tmp_path_factory.mktemp("logs"), "--threads", "1", home=home)
    yield server, model_id
    assert server.stop() == 0, server.output()


@pytest.fixture(scope="module")
def oai(served):
    server, model = served
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0), model


def test_the_thought_comes_back_as_reasoning_content(oai):
    client, model = oai
    reply = client.chat.completions.create(
        model=model, messages=ASK, extra_body={"grammar": THINK}, **GREEDY
    )
    message = reply.choices[0].message
    thought = message.model_extra["reasoning_content"]
    assert thought and thought[0].isupper() and "<think>" not in thought
    assert message.content and message.content[0].isupper()
    assert "think>" not in message.content
    # streamed: the same thought and answer, as reasoning_content and content deltas
    thoughts, texts = [], []
    for event in client.chat.completions.create(
        model=model, messages=ASK, extra_body={"grammar": THINK}, stream=True, **GREEDY
    ):
        for choice in event.choices:
            thoughts.append((choice.delta.model_extra or {}).get("reasoning_content") or "")
            texts.append(choice.delta.content or "")
    assert "".join(thoughts) == thought and "".join(texts) == message.content
    assert sum(1 for t in thoughts if t) > 3, "the thought streams in pieces"


@pytest.mark.parametrize(
    "off",
    [{"chat_template_kwargs": {"enable_thinking": False}}, {"reasoning_effort": "none"}],
)
def test_thinking_turned_off_starts_the_answer_after_an_empty_thought(oai, off):
    client, model = oai
    on = client.chat.completions.create(model=model, messages=ASK, temperature=0, max_tokens=12)
    reply = client.chat.completions.create(
        model=model, messages=ASK, temperature=0, max_tokens=12, extra_body=off
    )
    # the template's "<think>\n\n</think>\n\n" is in the prompt, and the answer is plain
    assert reply.usage.prompt_tokens > on.usage.prompt_tokens + 3
    assert reply.choices[0].message.content.strip()
    assert "reasoning_content" not in (reply.choices[0].message.model_extra or {})


def test_a_model_without_thinking_answers_plainly(oai):
    client, _ = oai
    body = dict(model=BUNDLED_ID, messages=ASK, temperature=0, max_tokens=12)
    plain = client.chat.completions.create(**body)
    off = client.chat.completions.create(
        **body, extra_body={"chat_template_kwargs": {"enable_thinking": False}}
    )
    assert off.usage.prompt_tokens == plain.usage.prompt_tokens
    assert off.choices[0].message.content == plain.choices[0].message.content
    assert "reasoning_content" not in (plain.choices[0].message.model_extra or {})


def test_bad_thinking_fields_name_the_field(oai):
    client, model = oai
    for extra, param in (
        ({"reasoning_effort": "max"}, "reasoning_effort"),
        ({"chat_template_kwargs": {"enable_thinking": "no"}}, "chat_template_kwargs"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=model, messages=ASK, extra_body=extra, **GREEDY)
        assert caught.value.body["param"] == param


def test_anthropic_thinking_blocks_streamed_and_not(served):
    server, model = served
    client = anthropic.Anthropic(base_url=server.root, api_key="unused", max_retries=0)
    body = dict(model=model, messages=ASK, max_tokens=90)
    greedy = {"grammar": THINK, "temperature": 0}
    reply = client.messages.create(**body, extra_body=greedy)
    kinds = [b.type for b in reply.content]
    assert kinds == ["thinking", "text"], kinds
    thought, text = reply.content[0].thinking, reply.content[1].text
    assert thought and "think>" not in thought + text and reply.stop_reason == "end_turn"
    with client.messages.stream(**body, extra_body=greedy) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "thinking_delta" in deltas and "text_delta" in deltas
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == thought and final.content[1].text == text
    # thinking disabled: the prompt the model reads has the template's empty thought
    count = client.messages.count_tokens(model=model, messages=ASK).input_tokens
    off = client.messages.count_tokens(
        model=model, messages=ASK, thinking={"type": "disabled"}
    ).input_tokens
    assert off > count + 3


def test_responses_api_gives_a_reasoning_item(oai):
    client, model = oai
    reply = client.responses.create(
        model=model, input="What is two plus two?", temperature=0, max_output_tokens=90,
        extra_body={"grammar": THINK},
    )  # fmt: skip
    kinds = [item.type for item in reply.output]
    assert kinds == ["reasoning", "message"], kinds
    assert reply.output[0].content[0].text and reply.output_text
    assert "think>" not in reply.output_text
    with client.responses.stream(
        model=model, input="What is two plus two?", temperature=0, max_output_tokens=90,
        extra_body={"grammar": THINK},
    ) as stream:  # fmt: skip
        kinds_seen = {e.type for e in stream}
        final = stream.get_final_response()
    assert "response.reasoning_text.delta" in kinds_seen
    assert final.output[0].content[0].text == reply.output[0].content[0].text
    assert final.output_text == reply.output_text
    short = dict(model=model, input="What is two plus two?", temperature=0, max_output_tokens=4)
    on = client.responses.create(**short).usage.input_tokens
    off = client.responses.create(**short, reasoning={"effort": "none"}).usage.input_tokens
    assert off > on + 3  # the template's empty thought is in the prompt


def test_the_splitter_reads_a_thought_fed_in_pieces():
    from runtime.reasoning import ThoughtSplitter

    text = "  <think>\nplan: add them</think>\n\nFour. And <think> stays text"
    for opened, source in ((False, text), (True, "plan: add them</thi" + "nk>Four.")):
        splitter = ThoughtSplitter(opened)
        parts = [splitter.feed(source[i : i + 3]) for i in range(0, len(source), 3)]
        parts.append(splitter.finish())
        thought = "".join(t for t, _ in parts)
        answer = "".join(a for _, a in parts)
        assert thought == "plan: add them"
        assert answer == ("Four. And <think> stays text" if not opened else "Four.")
    splitter = ThoughtSplitter()
    assert splitter.feed("Hello <think>") == ("", "Hello <think>")  # not at the start: text
    cut = ThoughtSplitter()
    assert cut.feed("<think>never closed") == ("never closed", "")


def test_json_from_a_thinking_model_is_the_answer_not_a_thought(tmp_path, bundled_gguf):
    """An R1-style template opens <think> in the prompt; an answer held to a JSON schema
    must still come back as the answer (the thought is skipped with an empty one)."""
    import json

    from chat_templates import OPENED_THINK_TEMPLATE
    from tool_model import copy_with_tool_template

    from models import describe
    from runtime import GREEDY, BackendOptions
    from runtime.llamacpp import LlamaCppBackend

    model = copy_with_tool_template(bundled_gguf, tmp_path / "r1.gguf", OPENED_THINK_TEMPLATE)
    backend = LlamaCppBackend(describe(model), BackendOptions(n_ctx=512, n_threads=1))
    backend.load()
    try:
        schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
                  "required": ["answer"], "additionalProperties": False}  # fmt: skip
        params = GREEDY.replace(max_tokens=30, json_schema=json.dumps(schema))
        chunks = list(backend.stream(ASK, params))
        assert not "".join(c.reasoning for c in chunks)
        assert json.loads("".join(c.text for c in chunks))["answer"] is not None
        thought = list(backend.stream(ASK, GREEDY.replace(max_tokens=8)))
        assert "".join(c.reasoning for c in thought) and not "".join(c.text for c in thought)
    finally:
        backend.unload()
