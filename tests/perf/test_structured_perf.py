"""Structured output's cost: decode tokens/s of answers held to a JSON schema against free
answers to the same question, from one ``fireside serve`` (the bundled model), in
alternating rounds so machine noise hits both alike; the medians are compared as a ratio.
Speeds are the server's own ``timings`` (first to last token); one thread, which keeps its
speed beside other busy processes (see ENVIRONMENT.md).
Run: .venv/bin/python -m pytest tests/perf/test_structured_perf.py -m perf -s
"""

from __future__ import annotations

import json
import statistics

import pytest
from server_tools import start_server

pytestmark = pytest.mark.perf

ROUNDS = 6
MAX_TOKENS = 120
QUESTION = (
    "Invent three characters for a story about a lighthouse. For each give a name, an age, "
    "a job and a few sentences about their life."
)
SCHEMA = {
    "type": "object",
    "properties": {
        "characters": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer"},
                    "job": {"type": "string"},
                    "about": {"type": "string"},
                },
                "required": ["name", "age", "job", "about"],
            },
        }
    },
    "required": ["characters"],
}


def test_json_schema_costs_little_decode_speed(tmp_path):
    from openai import OpenAI

    served = start_server(tmp_path / "logs", "--threads", "1", "--parallel", "1")
    try:
        client = OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
        ask = {
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
        }
        shaped = {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "characters", "schema": SCHEMA, "strict": True},
            }
        }
        client.chat.completions.create(**ask)  # loads the model
        speeds: dict[str, list[float]] = {"free": [], "schema": []}
        tokens: dict[str, list[int]] = {"free": [], "schema": []}
        for _ in range(ROUNDS):
            for name, extra in (("free", {}), ("schema", shaped)):
                reply = client.chat.completions.create(**ask, **extra)
                timings = (reply.model_extra or {})["timings"]
                speeds[name].append(timings["generation_tokens_per_s"])
                tokens[name].append(reply.usage.completion_tokens)
                if name == "schema" and reply.choices[0].finish_reason == "stop":
                    json.loads(reply.choices[0].message.content)  # it parses
    finally:
        served.stop()
    med = {k: statistics.median(v) for k, v in speeds.items()}
    print(
        f"\nfree text {med['free']:.1f} tokens/s {[round(s) for s in speeds['free']]} "
        f"({tokens['free'][0]} tokens), JSON schema {med['schema']:.1f} "
        f"{[round(s) for s in speeds['schema']]} ({tokens['schema'][0]} tokens), "
        f"ratio {med['schema'] / med['free']:.2f}"
    )
    assert min(tokens["schema"]) > 20 and min(tokens["free"]) > 20
    assert med["schema"] / med["free"] >= 0.9
