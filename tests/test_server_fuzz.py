"""The API's request parser, fuzzed: any JSON body either parses or is refused with the
server's own error naming the problem (a 4xx), never anything else (which would be a 500)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.server import BadRequest, parse_request
from models import BUNDLED_ID

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
FIELDS = (
    "model", "messages", "prompt", "stream", "stream_options", "n", "temperature", "top_p",
    "top_k", "min_p", "max_tokens", "max_completion_tokens", "seed", "stop", "repeat_penalty",
    "frequency_penalty", "presence_penalty", "context_overflow", "response_format", "tools",
    "logprobs", "user",
)  # fmt: skip
GOOD = {
    "chat": {"model": BUNDLED_ID, "messages": [{"role": "user", "content": "hi"}]},
    "completion": {"model": BUNDLED_ID, "prompt": "Once upon a time"},
}


@functools.cache
def bundled() -> object:
    from models import Catalog

    return Catalog().get(BUNDLED_ID)  # the real record: the parser reads its context length


def lookup(model_id: str) -> object:
    if model_id != BUNDLED_ID:
        raise BadRequest(f"model {model_id!r} is not in the library", "model")
    return bundled()


@pytest.mark.slow
@settings(max_examples=400)
@given(
    op=st.sampled_from(["chat", "completion"]),
    changes=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4),
    drop=st.sets(st.sampled_from(["model", "messages", "prompt"]), max_size=1),
)
def test_fuzzed_bodies_parse_or_get_a_named_4xx(op, changes, drop):
    body = {**GOOD[op], **changes}
    for key in drop:
        body.pop(key, None)
    try:
        parse_request(body, op, lookup)
    except BadRequest as exc:
        assert 400 <= exc.status < 500 and str(exc).strip()
