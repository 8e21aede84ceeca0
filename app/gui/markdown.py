"""Markdown to the HTML subset Qt's text engine shows, with highlighted code blocks.

No raw HTML from the model is passed through (``html`` off): an answer is text, never markup.
Each code block gets a "Copy" link (``copy:N``); the code itself is returned alongside.
markdown-it and Pygments are imported on first use, not at start-up.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


@dataclass
class Rendered:
    html: str
    code: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Palette:
    dark: bool
    code_bg: str
    code_border: str
    code_header: str
    inline_bg: str
    link: str
    pygments_style: str


LIGHT = Palette(False, "#f5f6f8", "#d6d9de", "#6b7280", "#eceef1", "#b4461a", "friendly")
DARK = Palette(True, "#1e2127", "#3a3f4b", "#9aa3b2", "#2e323a", "#f0a35e", "one-dark")


class MarkdownRenderer:
    def __init__(self, palette: Palette = LIGHT) -> None:
        self.palette = palette
        self._md: Any = None
        self._formatter: Any = None

    def _setup(self) -> None:
        from markdown_it import MarkdownIt
        from pygments.formatters import HtmlFormatter

        md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
        md.enable("table")
        md.enable("strikethrough")
        # markdown-it binds rules to its renderer: wrap ours so they keep ``self``.
        md.add_render_rule("fence", lambda _r, *a: self._fence(*a))
        md.add_render_rule("code_block", lambda _r, *a: self._fence(*a))
        md.add_render_rule("code_inline", lambda _r, *a: self._code_inline(*a))
        self._md = md
        self._formatter = HtmlFormatter(
            nowrap=True, noclasses=True, style=self.palette.pygments_style
        )

    # -- markdown-it render rules
    def _fence(self, tokens: Any, idx: int, _options: Any, env: dict) -> str:
        token = tokens[idx]
        lang = (token.info or "").strip().split(" ")[0] if token.type == "fence" else ""
        code = token.content
        number = env["offset"] + len(env["code"])
        env["code"].append(code)
        return self.code_html(code, lang, number)

    def _code_inline(self, tokens: Any, idx: int, _options: Any, _env: dict) -> str:
        return (
            f'<code style="background-color:{self.palette.inline_bg};">'
            f"{html.escape(tokens[idx].content)}</code>"
        )

    def code_html(self, code: str, lang: str, number: int) -> str:
        from pygments import highlight
        from pygments.lexers import TextLexer, get_lexer_by_name
        from pygments.util import ClassNotFound

        try:
            lexer = get_lexer_by_name(lang) if lang else TextLexer()
        except ClassNotFound:
            lexer = TextLexer()
        body = highlight(code, lexer, self._formatter).rstrip("\n")
        p = self.palette
        label = html.escape(lang) if lang else "code"
        return (
            f'<table width="100%" cellspacing="0" cellpadding="6" border="0" '
            f'bgcolor="{p.code_bg}" style="margin-top:6px; margin-bottom:6px;">'
            f'<tr><td><span style="color:{p.code_header}; font-size:small;">{label}</span>'
            f'&nbsp;&nbsp;&nbsp;<a href="copy:{number}" style="font-size:small; '
            f'color:{p.link}; text-decoration:none;">Copy</a></td></tr>'
            f'<tr><td><pre style="margin:0;">{body}</pre></td></tr></table>'
        )

    def render(self, source: str, code_offset: int = 0) -> Rendered:
        """HTML for ``source``; its code blocks are numbered from ``code_offset``."""
        if self._md is None:
            self._setup()
        env: dict[str, Any] = {"offset": code_offset, "code": []}
        out = self._md.render(source, env)
        out = out.replace("<table>", '<table border="1" cellspacing="0" cellpadding="4">')
        return Rendered(out, env["code"])


class BlockSplitter:
    """Finds where a growing Markdown text can be cut into finished blocks.

    A block is finished after a blank line outside a code fence, or after a fence's closing
    line. Only new lines are scanned, so feeding a token costs the same at token 1,000 as at
    token 10.
    """

    def __init__(self) -> None:
        self.text = ""
        self._scan = 0
        self._fence: str | None = None
        self._content = False
        self.boundary = 0  # the text before this index is made of finished blocks

    def feed(self, piece: str) -> None:
        self.text += piece
        if "\n" not in piece:
            return
        text = self.text
        while True:
            nl = text.find("\n", self._scan)
            if nl < 0:
                break
            line = text[self._scan : nl]
            end = nl + 1
            if self._fence is not None:
                stripped = line.strip()
                if stripped.startswith(self._fence[0] * len(self._fence)) and not stripped.strip(
                    self._fence[0]
                ):
                    self._fence = None
                    self.boundary = end
            else:
                m = FENCE.match(line)
                if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                    self._fence = m.group(1)
                    self._content = True
                elif not line.strip():
                    if self._content:
                        self.boundary = end
                else:
                    self._content = True
            self._scan = end

    @property
    def in_fence(self) -> bool:
        """Whether the unfinished text is inside a code block."""
        return self._fence is not None

    def take(self) -> str:
        """Remove and return the finished blocks (the unfinished rest stays)."""
        done, rest = self.text[: self.boundary], self.text[self.boundary :]
        self.text, self._scan, self._fence, self.boundary = "", 0, None, 0
        self._content = False
        self.feed(rest)
        return done
