"""Chat templates written for the tests, set on copies of the bundled model (tool_model.py):
a Qwen3-style thinking template, and tool templates in the Llama 3.x JSON and Mistral
``[TOOL_CALLS]`` formats. They keep the bundled model's ChatML turn markers where its
tokenizer needs them to end a turn, and the format's own markers where llama.cpp and
Fireside recognise the format."""

from __future__ import annotations

# Thinking: ChatML turns; an earlier answer's thought is not shown again; with
# enable_thinking false the answer starts with an empty thought (as Qwen3's does).
THINK_TEMPLATE = """\
{%- if messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for m in messages %}{%- if m.role != 'system' %}<|im_start|>{{ m.role }}
{% if m.role == 'assistant' and '</think>' in m.content %}{{ m.content.split('</think>')[-1].lstrip() }}\
{% else %}{{ m.content }}{% endif %}<|im_end|>
{% endif %}{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% if enable_thinking is defined and enable_thinking is false %}<think>

</think>

{% endif %}{% endif %}"""

# Llama 3.x: header-marked turns; the functions as JSON in the last user turn; a call is
# a bare JSON object {"name": ..., "parameters": {...}}; results in "ipython" turns.
LLAMA3_TEMPLATE = """\
{{- bos_token }}
{%- for m in messages %}
{%- if m.role == 'assistant' and m.tool_calls %}<|start_header_id|>assistant<|end_header_id|>

{% for c in m.tool_calls %}{"name": "{{ c.function.name }}", "parameters": {{ c.function.arguments | tojson }}}{% endfor %}<|eot_id|>
{%- elif m.role == 'tool' %}<|start_header_id|>ipython<|end_header_id|>

{{ m.content }}<|eot_id|>
{%- elif tools and loop.last and m.role == 'user' %}<|start_header_id|>user<|end_header_id|>

Given the following functions, respond with a JSON for a function call with its proper \
arguments that best answers the given prompt.
Respond in the format {"name": function name, "parameters": dictionary of argument name and \
its value}. Do not use variables.

{% for t in tools %}{{ t | tojson }}

{% endfor %}{{ m.content }}<|eot_id|>
{%- else %}<|start_header_id|>{{ m.role }}<|end_header_id|>

{{ m.content }}<|eot_id|>
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>

{% endif %}"""

# Mistral: [INST] turns; the functions in [AVAILABLE_TOOLS] before the last user turn; the
# calls as [TOOL_CALLS] and a JSON list; results in [TOOL_RESULTS].
MISTRAL_TEMPLATE = """\
{{- bos_token }}
{%- for m in messages %}
{%- if m.role == 'user' %}
{%- if tools and loop.last %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}\
[INST]{{ m.content }}[/INST]
{%- elif m.role == 'assistant' and m.tool_calls %}[TOOL_CALLS][\
{%- for c in m.tool_calls %}{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}, "id": "{{ c.id }}"}{% if not loop.last %}, {% endif %}{% endfor %}]</s>
{%- elif m.role == 'tool' %}[TOOL_RESULTS]{"content": {{ m.content | tojson }}}[/TOOL_RESULTS]
{%- elif m.role == 'assistant' %}{{ m.content }}</s>
{%- endif %}
{%- endfor %}"""

# DeepSeek-R1 style: the generation prompt opens the thought itself.
OPENED_THINK_TEMPLATE = THINK_TEMPLATE.replace(
    "{% endif %}{% endif %}", "{% else %}<think>\n{% endif %}{% endif %}"
)

# Mistral's newer call syntax (Mistral Small 3.2, Devstral, Magistral): [TOOL_CALLS]name[ARGS]{...}
MISTRAL_ARGS_TEMPLATE = """\
{{- bos_token }}
{%- for m in messages %}
{%- if m.role == 'user' %}
{%- if tools and loop.last %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}\
[INST]{{ m.content }}[/INST]
{%- elif m.role == 'assistant' and m.tool_calls %}
{%- for c in m.tool_calls %}[TOOL_CALLS]{{ c.function.name }}[ARGS]{{ c.function.arguments | tojson }}{% endfor %}</s>
{%- elif m.role == 'tool' %}[TOOL_RESULTS]{{ m.content }}[/TOOL_RESULTS]
{%- elif m.role == 'assistant' %}{{ m.content }}</s>
{%- endif %}
{%- endfor %}"""
