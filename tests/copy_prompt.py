"""A prompt the bundled model answers by copying from it: rewrite a given function with one
change. SmolLM2-135M copies this one line for line (checked by :func:`copied_lines`)."""

from __future__ import annotations

SETTINGS = [
    ("width", "800"),
    ("height", "600"),
    ("title", '"My window"'),
    ("theme", '"light"'),
    ("font_size", "12"),
    ("autosave", "True"),
    ("language", '"en"'),
    ("volume", "70"),
    ("show_toolbar", "True"),
    ("recent_files", "10"),
    ("backup_folder", '"backups"'),
    ("spell_check", "False"),
    ("tab_width", "4"),
    ("line_numbers", "True"),
]
FUNCTION = (
    "def default_settings():\n    settings = {}\n"
    + "".join(f'    settings["{key}"] = {value}\n' for key, value in SETTINGS)
    + "    return settings\n"
)
ASK = "Rewrite this Python function with one change: the width is 1024."
MESSAGES = [{"role": "user", "content": f"{ASK}\n\n```python\n{FUNCTION}```"}]
END_OF_CODE = ("```\n\n", "```<")  # the answer's code block is over (its explanation is not copied)


def copied_lines(answer: str) -> int:
    """How many of the function's lines the answer repeats word for word."""
    lines = set(answer.splitlines())
    return sum(1 for line in FUNCTION.splitlines() if line in lines)
