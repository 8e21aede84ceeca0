"""A tool-capable copy of the bundled model: its GGUF rewritten (the ``gguf`` package's
metadata copier) with a ChatML template that offers tools in the Hermes/Qwen format."""

from __future__ import annotations

from pathlib import Path

# Written for these tests: ChatML turns; the functions listed in the system turn as JSON,
# one per line inside <tools>; the assistant's calls as <tool_call>{json}</tool_call>; the
# results of calls in a user turn as <tool_response> blocks.
TOOL_TEMPLATE = """\
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}You can call functions. Their signatures, one per line:
<tools>
{% for t in tools %}{{ t | tojson }}
{% endfor %}</tools>
To call one, answer with a JSON object naming it and its arguments, like:
<tool_call>
{"name": "function_name", "arguments": {"argument": "value"}}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for m in messages %}
{%- if m.role == 'system' %}
{%- elif m.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user
{% endif %}<tool_response>
{{ m.content }}
</tool_response>
{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>
{% endif %}
{%- elif m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant
{% if m.content %}{{ m.content }}
{% endif %}{% for c in m.tool_calls %}<tool_call>
{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}
</tool_call>
{% endfor %}<|im_end|>
{% else %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def copy_with_tool_template(src: Path, dst: Path, template: str = TOOL_TEMPLATE) -> Path:
    """``src`` copied to ``dst`` with ``tokenizer.chat_template`` set to ``template``."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = gguf.GGUFReader(src, "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    new = {gguf.Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(gguf.GGUFValueType.STRING, template)}
    copy_with_new_metadata(reader, writer, new, [])
    return dst


def home_with_tool_model(
    home: Path, bundled: Path, folder: Path, template: str = TOOL_TEMPLATE, name: str = "tools"
) -> str:
    """Import a copy of ``bundled`` with ``template`` (written in ``folder`` as NAME.gguf)
    into the library at ``home``, leaving this process's FIRESIDE_HOME as it was; returns
    the model's id."""
    import contextlib
    import os

    from models import Catalog, import_model

    model = copy_with_tool_template(bundled, folder / f"{name}.gguf", template)
    old = os.environ.get("FIRESIDE_HOME")
    os.environ["FIRESIDE_HOME"] = str(home)
    try:
        with contextlib.closing(Catalog()) as catalog:
            (record,) = import_model(model, mode="link", catalog=catalog)
    finally:
        if old is None:
            os.environ.pop("FIRESIDE_HOME", None)
        else:
            os.environ["FIRESIDE_HOME"] = old
    return record.id
