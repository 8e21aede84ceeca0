"""The chat-template check and the sandbox, fuzzed: a template assembled from Jinja's pieces
(loops, conditions, filters, arithmetic, calls into the sandbox, broken syntax) either renders
to text or raises our TemplateError in words, never anything else, and within a time bound;
a model whose template does not compile still gets a usable one (the generic template) and a
notice. Hostile arithmetic (a string repeated into gigabytes) is refused, not attempted.

A longer run: ``FIRESIDE_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_template_fuzz.py``.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import TemplateError
from runtime.template import GENERIC_TEMPLATE, render_chat, usable_template

EXAMPLES = int(os.environ.get("FIRESIDE_FUZZ_EXAMPLES", "300"))
PER_TEMPLATE_S = 2.0
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello {{ there }} {% raw %}"},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "What is 2+2?"},
]
PIECES = [
    "{% for m in messages %}", "{% endfor %}", "{% if add_generation_prompt %}", "{% else %}",
    "{% endif %}", "{{ m['content'] }}", "{{ m.role }}", "{{ messages[0]['content'] }}",
    "{{ messages[9] }}", "{{ bos_token }}", "{{ eos_token }}", "<|im_start|>", "<|im_end|>\n",
    "{{ m['content'] | trim }}", "{{ m['content'] | upper }}", "{{ messages | length }}",
    "{% set x = 10 %}", "{{ x * 3 }}", "{{ 'ab' * 4 }}", "{{ 'x' * 10**10 }}", "{{ 9**9**9 }}",
    "{{ 2 ** (10**7) }}", "{{ messages * 10**8 }}", "{{ 1 / 0 }}", "{{ range(10**9) | list }}",
    "{{ raise_exception('no system role') }}", "{{ strftime_now('%Y') }}", "{{ tools }}",
    "{{ m.__class__ }}", "{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "{{ (messages | first).items() }}",
    "{{ m['content'] | tojson }}", "{{ messages | map(attribute='role') | join(',') }}",
    "{%", "%}", "{{", "}}", "{#", "#}", "}", "{", "'", "\"", "(", ")", "[", "]", "|", "|x",
    "not", "and", "or", "~", "-", "endfor", "endif", "loop.index", "{{ loop.index0 }}",
    "text ", "\n", " ",
]  # fmt: skip
TEMPLATES = st.lists(st.sampled_from(PIECES), min_size=1, max_size=14).map("".join)


def render_or_refuse(source: str) -> None:
    template, notice = usable_template(source)
    if notice is not None:
        assert template == GENERIC_TEMPLATE and "broken" in notice
    started = time.monotonic()
    try:
        text = render_chat(template, MESSAGES, bos_token="<s>", eos_token="</s>")
    except TemplateError as exc:
        assert str(exc).startswith("the model's chat template"), str(exc)
        assert "Error" not in str(exc).split(":")[0], str(exc)
    else:
        assert isinstance(text, str)
    assert time.monotonic() - started < PER_TEMPLATE_S, source


@settings(max_examples=EXAMPLES)
@given(TEMPLATES)
def test_any_template_renders_or_is_refused_in_words(source: str) -> None:
    render_or_refuse(source)


@pytest.mark.parametrize(
    "hostile",
    [
        "{{ 'x' * 10**10 }}",
        "{{ messages * 10**9 }}",
        "{{ 2 ** (10**7) }}",
        "{% for i in range(10**9) %}{% endfor %}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    ],
)
def test_hostile_templates_are_refused_quickly(hostile: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError):
        render_chat(hostile, MESSAGES)
    assert time.monotonic() - started < PER_TEMPLATE_S


def test_bounded_arithmetic_still_does_what_templates_need() -> None:
    text = render_chat("{{ '=' * 3 }}{{ 2 ** 3 }}{{ [1] * 2 }}{{ 3 * 'ab' }}", MESSAGES)
    assert text == "===8[1, 1]ababab"
