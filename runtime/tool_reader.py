"""Reading tool calls out of an answer's text as it streams, in the format the model's
template taught it (runtime.tools names the formats):

- Hermes/Qwen: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, anywhere;
- Llama 3.x: the answer is the call, a bare ``{"name": ..., "parameters": {...}}`` (several
  separated by ``;``), optionally after ``<|python_tag|>``;
- Mistral: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`` (v3), or the newer
  ``[TOOL_CALLS]name[ARGS]{...}``, one call per opener.

``feed`` and ``finish`` yield plain text (``str``) and, for each call, :class:`CallStart`,
one or more :class:`ArgsPiece` and the complete :class:`ToolCall` last. A call region that
is not calls of the offered functions comes back as the text it was, and ``malformed`` is
set. With ``incremental`` (a call held to its schema by the engine, so it cannot turn out
malformed unless cut off) a call's arguments are given as they arrive; otherwise a region
is read whole before anything of it is given.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

HERMES, LLAMA3, MISTRAL, MISTRAL_ARGS = "hermes", "llama3", "mistral", "mistral-args"
HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
MISTRAL_OPEN, ARGS = "[TOOL_CALLS]", "[ARGS]"
NAME_SO_FAR = re.compile(r"\s*[A-Za-z0-9_.-]{0,64}")
PYTHON_TAG = "<|python_tag|>"
HEADER = re.compile(
    r'\{\s*"name"\s*:\s*"([A-Za-z0-9_.-]{1,64})"\s*,\s*"(?:arguments|parameters)"\s*:\s*\{$'
)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI's API carries it


@dataclass(frozen=True)
class CallStart:
    id: str
    name: str


@dataclass(frozen=True)
class ArgsPiece:
    text: str


Event = str | CallStart | ArgsPiece | ToolCall


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


class _Scan:
    """Nesting of JSON text fed one character at a time (strings and escapes known)."""

    def __init__(self) -> None:
        self.depth, self.in_string, self.escaped = 0, False, False

    def step(self, ch: str) -> None:
        if self.in_string:
            if self.escaped:
                self.escaped = False
            elif ch == "\\":
                self.escaped = True
            elif ch == '"':
                self.in_string = False
        elif ch == '"':
            self.in_string = True
        elif ch in "{[":
            self.depth += 1
        elif ch in "}]":
            self.depth -= 1


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _objects(text: str) -> list[str] | None:
    """Top-level JSON objects one after another (separated by ``;``, commas or spaces)."""
    parts, scan, start = [], _Scan(), -1
    for i, ch in enumerate(text):
        if scan.depth == 0 and not scan.in_string and start < 0:
            if ch in " \t\r\n;,":
                continue
            if ch != "{":
                return None
            start = i
        scan.step(ch)
        if scan.depth == 0 and start >= 0:
            parts.append(text[start : i + 1])
            start = -1
    return parts if start < 0 and parts else None


def _call_of(item: object, names: set[str]) -> tuple[str, str] | None:
    if not isinstance(item, dict) or item.get("name") not in names:
        return None
    args = item.get("arguments", item.get("parameters", {}))
    return (item["name"], json.dumps(args)) if isinstance(args, dict) else None


def parse_region(fmt: str, body: str, names: set[str]) -> list[tuple[str, str]] | None:
    """The (name, arguments JSON) calls of a whole region (after its opener), or None."""
    text = body.strip()
    if fmt == HERMES:
        items = [_loads(text.removesuffix(HERMES_CLOSE).strip())]
    elif fmt == MISTRAL_ARGS:
        name, _, args = text.partition(ARGS)
        items = [{"name": name.strip(), "arguments": _loads(args)} if _ else None]
    elif fmt == MISTRAL:
        value = _loads(text)
        items = value if isinstance(value, list) and value else [None]
    else:
        items = [_loads(p) for p in _objects(text.removeprefix(PYTHON_TAG)) or [""]]
    calls = [_call_of(item, names) for item in items]
    return None if any(c is None for c in calls) else calls  # type: ignore[return-value]


def _could_be_name(head: str) -> bool:
    """Whether ``head`` may still become ``name[ARGS]`` (Mistral's newer calls)."""
    match = NAME_SO_FAR.match(head)
    return match is not None and ARGS.startswith(head[match.end() :])


def _partial_suffix(text: str, tag: str) -> int:
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-k:]):
            return k
    return 0


class CallReader:
    def __init__(self, names: set[str], fmt: str = HERMES, incremental: bool = False) -> None:
        self.names, self.fmt, self.incremental = names, fmt, incremental
        self.buffer = ""
        self.opener = ""  # the text that opened the region now being read
        self.region: str | None = None  # the region's text so far (buffered reading)
        self.live: _Live | None = None  # the region being read incrementally
        self.malformed = False
        self.seen_start = False  # Llama 3: whether the answer's start has been decided

    def feed(self, text: str) -> Iterator[Event]:
        self.buffer += text
        while self.buffer:
            if self.live is None and self.region is None:
                at, ready = self._find_open()
                if at is None:
                    if ready:
                        yield self.buffer[:ready]
                        self.buffer = self.buffer[ready:]
                    return
                if at:
                    yield self.buffer[:at]
                self.buffer = self.buffer[at + len(self.opener) :]
                if self.incremental:
                    self.live = _Live(self)
                else:
                    self.region = ""
            elif self.live is not None:
                data, self.buffer = self.buffer, ""
                yield from self.live.feed(data)
                if self.live.done:
                    self.buffer, self.live = self.live.rest, None
            else:
                assert self.region is not None
                self.region += self.buffer
                self.buffer = ""
                end = self._region_end(self.region)
                if end is None:
                    return
                self.region, self.buffer = self.region[:end], self.region[end:]
                yield from self._close_region()

    def finish(self) -> Iterator[Event]:
        if self.live is not None:
            yield from self.live.finish()
            self.live = None
        elif self.region is not None:
            self.region += self.buffer
            self.buffer = ""
            yield from self._close_region()
        if self.buffer:
            yield self.buffer
        self.buffer = ""

    def _find_open(self) -> tuple[int | None, int]:
        """(where a region opens in the buffer, with ``opener`` set; or None and how much
        of the buffer is plain text for sure)."""
        if self.fmt == LLAMA3:
            if self.seen_start:
                return None, len(self.buffer)
            head = self.buffer.lstrip()
            if head.startswith("{") or head.startswith(PYTHON_TAG):
                self.seen_start = True
                lead = len(self.buffer) - len(head)
                tag = PYTHON_TAG if head.startswith(PYTHON_TAG) else ""
                self.opener = self.buffer[: lead + len(tag)]
                return 0, 0
            if not head or PYTHON_TAG.startswith(head):
                return None, 0  # not decided yet
            self.seen_start = True
            return None, len(self.buffer)
        tag = HERMES_OPEN if self.fmt == HERMES else MISTRAL_OPEN  # both Mistral kinds
        at = self.buffer.find(tag)
        if at >= 0:
            self.opener = tag
            return at, 0
        return None, len(self.buffer) - _partial_suffix(self.buffer, tag)

    def _region_end(self, region: str) -> int | None:
        if self.fmt == HERMES:
            at = region.find(HERMES_CLOSE)
            return None if at < 0 else at + len(HERMES_CLOSE)
        if self.fmt in (MISTRAL, MISTRAL_ARGS):
            first = "[" if self.fmt == MISTRAL else "{"
            start = 0
            if self.fmt == MISTRAL_ARGS:
                at = region.find(ARGS)
                if at < 0:
                    return None if _could_be_name(region) else 0
                start = at + len(ARGS)
            scan, started = _Scan(), False
            for i, ch in enumerate(region[start:], start):
                if not started:
                    if ch.isspace():
                        continue
                    if ch != first:
                        return i  # not a call: the region ends here, unread
                    started = True
                scan.step(ch)
                if scan.depth == 0:
                    return i + 1
        return None  # Llama 3: the whole answer

    def _close_region(self) -> Iterator[Event]:
        raw, self.region = self.opener + (self.region or ""), None
        calls = parse_region(self.fmt, raw[len(self.opener) :], self.names)
        if calls is None:
            self.malformed = True
            yield raw
            return
        for name, args in calls:
            ident = new_call_id()
            yield CallStart(ident, name)
            yield ArgsPiece(args)
            yield ToolCall(ident, name, args)


class _Live:
    """One region read as it comes (the engine holds it to the calls' schema): each call's
    arguments are given as they arrive, once its name is read."""

    def __init__(self, reader: CallReader) -> None:
        self.reader = reader
        self.fmt = reader.fmt
        self.state = {MISTRAL: "list", MISTRAL_ARGS: "name"}.get(self.fmt, "between")
        self.obj = ""  # the current call object's text
        self.scan = _Scan()
        self.call: CallStart | None = None
        self.args = ""
        self.args_scan: _Scan | None = None
        self.raw = reader.opener  # everything of the region not yet given out as a call
        self.calls = 0
        self.done, self.rest, self.tail = False, "", ""

    def feed(self, data: str) -> Iterator[Event]:
        """The events of ``data``, a call's argument characters joined into one piece."""
        args = ""
        for i, ch in enumerate(data):
            if self.done:
                self.rest += data[i:]
                break
            for event in self._step(ch):
                if isinstance(event, ArgsPiece):
                    args += event.text
                    continue
                if args:
                    yield ArgsPiece(args)
                    args = ""
                yield event
        if args:
            yield ArgsPiece(args)

    def _fail(self) -> Iterator[Event]:
        self.reader.malformed = True
        if self.call is not None:
            yield ToolCall(self.call.id, self.call.name, self.args)
            self.call = None
        else:
            yield self.raw + self.obj
        self.done = True

    def _step(self, ch: str) -> Iterator[Event]:
        if self.state == "name":  # Mistral name[ARGS]{...}: the name, then the arguments
            self.raw += ch
            head = self.raw[len(self.reader.opener) :]
            if head.endswith(ARGS):
                name = head[: -len(ARGS)].strip()
                if name not in self.reader.names:
                    yield from self._fail()
                    return
                self.call = CallStart(new_call_id(), name)
                yield self.call
                self.state, self.args, self.args_scan = "args", "", _Scan()
            elif not _could_be_name(head):
                yield from self._fail()
            return
        if self.state == "args":
            if not self.args and ch.isspace():
                return
            assert self.args_scan is not None and self.call is not None
            self.args_scan.step(ch)
            self.args += ch
            yield ArgsPiece(ch)
            if self.args_scan.depth == 0:
                if _loads(self.args) is None or not self.args.startswith("{"):
                    yield from self._fail()
                    return
                yield ToolCall(self.call.id, self.call.name, self.args)
                self.call, self.raw, self.done = None, "", True
            return
        if self.state == "list":
            if ch.isspace():
                return
            if ch != "[":
                self.raw += ch
                yield from self._fail()
                return
            self.state = "between"
            return
        if self.state == "close":  # Hermes: only the closing tag is left
            self.tail += ch
            tail = self.tail.strip()
            if not tail or (HERMES_CLOSE.startswith(tail) and tail != HERMES_CLOSE):
                return
            self.done = True
            if tail != HERMES_CLOSE:  # no closing tag: what follows is text
                self.rest = self.tail
            return
        if self.state == "between":
            if ch.isspace() or ch in ";,":
                return
            if ch == "]" and self.fmt == MISTRAL:
                self.done = True
                return
            if ch != "{":
                self.raw += ch
                yield from self._fail()
                return
            self.state, self.obj, self.scan = "object", "", _Scan()
        self.obj += ch
        self.scan.step(ch)
        if self.args_scan is not None:
            self.args_scan.step(ch)
            self.args += ch
            yield ArgsPiece(ch)
            if self.args_scan.depth == 0:
                self.args_scan = None
        elif self.call is None and ch == "{" and (m := HEADER.match(self.obj)):
            if m.group(1) not in self.reader.names:
                yield from self._fail()
                return
            self.call = CallStart(new_call_id(), m.group(1))
            yield self.call
            self.args, self.args_scan = "{", _Scan()
            self.args_scan.step("{")
            yield ArgsPiece("{")
        if self.scan.depth == 0:  # the call object closed
            yield from self._end_object()

    def _end_object(self) -> Iterator[Event]:
        if self.call is None:  # its keys came in another order: read it whole
            found = _call_of(_loads(self.obj), self.reader.names)
            if found is None:
                yield from self._fail()
                return
            self.call = CallStart(new_call_id(), found[0])
            yield self.call
            self.args = found[1]
            yield ArgsPiece(found[1])
        elif _loads(self.args) is None:
            yield from self._fail()
            return
        yield ToolCall(self.call.id, self.call.name, self.args)
        self.call, self.obj, self.raw, self.calls = None, "", "", self.calls + 1
        self.state = "close" if self.fmt == HERMES else "between"

    def finish(self) -> Iterator[Event]:
        if self.call is not None or self.obj or self.raw:
            yield from self._fail()  # cut off
