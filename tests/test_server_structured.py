"""Structured output through ``fireside serve`` with the official openai client: the answer
parses and validates (jsonschema) against the schema asked for, streamed and not; a cut-off
answer says "length"; what the engine cannot enforce is refused by name."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from server_tools import start_server

from models import BUNDLED_ID

pytestmark = pytest.mark.slow

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pets": {"type": "array", "items": {"enum": ["cat", "dog", "fish"]}, "maxItems": 3},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}
ASK = [{"role": "user", "content": "Describe a person and their pets."}]
SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": PERSON, "strict": True},
}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    served = start_server(
        tmp_path_factory.mktemp("logs"), "--threads", "1", home=tmp_path_factory.mktemp("home")
    )
    yield openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    assert served.stop() == 0, served.output()


def test_a_json_schema_answer_validates(client):
    for seed in (1, 2, 3):
        reply = client.chat.completions.create(
            model=BUNDLED_ID,
            messages=ASK,
            response_format=SCHEMA_FORMAT,
            temperature=0.8,
            seed=seed,
            max_tokens=120,
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "stop", choice.message.content
        jsonschema.validate(json.loads(choice.message.content), PERSON)


def test_a_streamed_json_schema_answer_validates(client):
    stream = client.chat.completions.create(
        model=BUNDLED_ID,
        messages=ASK,
        response_format=SCHEMA_FORMAT,
        temperature=0,
        max_tokens=120,
        stream=True,
    )
    parts, reasons = [], []
    for event in stream:
        for choice in event.choices:
            parts.append(choice.delta.content or "")
            reasons.append(choice.finish_reason)
    assert reasons[-1] == "stop"
    assert len([p for p in parts if p]) > 3  # really streamed, not one block
    jsonschema.validate(json.loads("".join(parts)), PERSON)


def test_json_object_mode_gives_an_object(client):
    reply = client.chat.completions.create(
        model=BUNDLED_ID,
        messages=[{"role": "user", "content": "List three colours."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=150,
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_a_cut_off_answer_is_reported_as_length(client):
    reply = client.chat.completions.create(
        model=BUNDLED_ID, messages=ASK, response_format=SCHEMA_FORMAT, temperature=0, max_tokens=4
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):  # four tokens cannot hold the whole object
        json.loads(choice.message.content)


def test_a_grammar_holds_completions_and_chat(client):
    grammar = 'root ::= ("yes" | "no") "." '
    for seed in range(3):
        reply = client.completions.create(
            model=BUNDLED_ID,
            prompt="Is the sky green? Answer:",
            max_tokens=8,
            temperature=1.0,
            seed=seed,
            extra_body={"grammar": grammar},
        )
        assert reply.choices[0].text in ("yes.", "no.")
    reply = client.chat.completions.create(
        model=BUNDLED_ID, messages=ASK, max_tokens=8, extra_body={"grammar": grammar}
    )
    assert reply.choices[0].message.content in ("yes.", "no.")


@pytest.mark.parametrize(
    ("schema", "word"),
    [
        ({"type": "object", "not": {"required": ["a"]}}, "'not'"),
        ({"type": "array", "uniqueItems": True}, "'uniqueItems'"),
        ({"type": "object", "properties": {"a": {"if": {}, "then": {}}}}, "schema.properties.a.if"),
        ({"type": "string", "format": "credit-card"}, "'credit-card'"),
        ({"$ref": "https://example.com/schema.json"}, "point inside the schema"),
    ],
)
def test_what_the_engine_cannot_enforce_is_refused_by_name(client, schema, word):
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=BUNDLED_ID, messages=ASK, response_format=fmt)
    error = caught.value.body
    assert word in error["message"] and error["param"] == "response_format"


def test_a_broken_grammar_and_a_grammar_with_a_schema_are_refused(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(
            model=BUNDLED_ID, prompt="x", max_tokens=4, extra_body={"grammar": 'root ::= "a" ('}
        )
    assert caught.value.body["param"] == "grammar" and "grammar" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=BUNDLED_ID,
            messages=ASK,
            response_format={"type": "json_object"},
            extra_body={"grammar": 'root ::= "a"'},
        )
    assert caught.value.body["param"] == "grammar"


def test_engines_without_structured_output_refuse_by_name():
    """MLX and PyTorch have no grammar sampler: a clear refusal, never a free-text answer."""
    from models.records import ModelRecord
    from runtime import GenerationParams, InvalidParameters
    from runtime.mlx_backend import MLXBackend
    from runtime.torch_backend import TorchBackend

    record = ModelRecord(id="x", name="x", format="safetensors", path="/nowhere", source="test")
    for cls, word in ((MLXBackend, "MLX"), (TorchBackend, "PyTorch")):
        for params in (
            GenerationParams(json_schema={"type": "object"}),
            GenerationParams(grammar='root ::= "a"'),
        ):
            with pytest.raises(InvalidParameters, match=f"the {word} engine cannot"):
                next(cls(record).stream([{"role": "user", "content": "hi"}], params))


def test_fireside_chat_json_schema(tmp_path):
    import os
    import subprocess
    import sys

    from server_tools import ROOT

    schema_file = tmp_path / "person.json"
    schema_file.write_text(json.dumps(PERSON))
    env = dict(os.environ, FIRESIDE_HOME=str(tmp_path / "home"))

    def chat(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "app", "chat", "--temperature", "0", "--max-tokens", "120",
             *args, "Describe a person and their pets."],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    out = chat("--json-schema", str(schema_file))
    assert out.returncode == 0, out.stderr
    jsonschema.validate(json.loads(out.stdout), PERSON)
    out = chat("--json")
    assert out.returncode == 0 and isinstance(json.loads(out.stdout), dict)
    schema_file.write_text(json.dumps({"type": "object", "not": {}}))
    out = chat("--json-schema", str(schema_file))
    assert out.returncode != 0 and "'not'" in out.stderr and "Error" not in out.stderr
