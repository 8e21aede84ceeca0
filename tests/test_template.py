import pytest

from runtime import TemplateError
from runtime.template import render_chat, render_plain, validate_messages

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_chatml_renders_roles_in_order_with_generation_prompt():
    text = render_chat(
        CHATML, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    assert (
        text
        == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    "payload",
    [
        "{{ messages.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ raise_exception.__globals__['__builtins__']['__import__']('os').system('touch PWNED') }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% set x = messages.append({'role': 'user', 'content': 'injected'}) %}{{ x }}",
    ],
)
def test_hostile_template_is_refused_and_nothing_runs(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TemplateError):
        render_chat(payload, [{"role": "user", "content": "hi"}])
    assert not (tmp_path / "PWNED").exists()


def test_template_can_refuse_a_conversation_with_raise_exception():
    tpl = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be user') }}{% endif %}ok"
    with pytest.raises(TemplateError, match="first message must be user"):
        render_chat(tpl, [{"role": "assistant", "content": "x"}])


def test_broken_template_is_reported():
    with pytest.raises(TemplateError, match="broken"):
        render_chat("{% for %}", [{"role": "user", "content": "hi"}])


def test_a_broken_template_gives_way_to_the_generic_one_with_a_notice():
    from runtime.template import GENERIC_TEMPLATE, usable_template

    template, notice = usable_template("{% for m in messages %}{{ m.content }")
    assert template == GENERIC_TEMPLATE and "broken" in notice and "ChatML" in notice
    text = render_chat(template, [{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    good = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert usable_template(good) == (good, None)


def test_plain_rendering_for_base_models():
    assert render_plain([{"role": "user", "content": "Once upon a time"}]) == "Once upon a time"


def test_messages_are_checked():
    from runtime import InvalidParameters

    with pytest.raises(InvalidParameters, match="role 'wizard'"):
        validate_messages([{"role": "wizard", "content": "x"}])
    with pytest.raises(InvalidParameters, match="no messages"):
        validate_messages([])
