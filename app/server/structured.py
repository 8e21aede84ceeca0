"""OpenAI's ``response_format`` (text, json_object, json_schema) and the ``grammar`` field
(llama-server's) read into what the runtime takes: a checked JSON schema or a grammar."""

from __future__ import annotations

from typing import Any

from .errors import BadRequest

MAX_GRAMMAR_CHARS = 64 * 1024


def read_structured(body: dict[str, Any]) -> dict[str, Any]:
    """``json_schema`` / ``grammar`` values for GenerationParams (empty: free text)."""
    from runtime import InvalidParameters
    from runtime.structured import JSON_OBJECT, schema_text

    fmt = body.get("response_format")
    grammar = body.get("grammar")
    schema: Any = None
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise BadRequest(
                "response_format.type must be text, json_object or json_schema",
                "response_format",
            )
        if kind == "json_object":
            schema = JSON_OBJECT
        elif kind == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict | bool):
                raise BadRequest(
                    "response_format.json_schema must be an object with the schema under "
                    "'schema' (and a 'name')",
                    "response_format",
                )
            schema = spec["schema"]
    if grammar is not None:
        if not isinstance(grammar, str) or not grammar.strip():
            raise BadRequest("grammar must be a non-empty GBNF grammar", "grammar")
        if len(grammar) > MAX_GRAMMAR_CHARS:
            raise BadRequest(f"grammar is longer than {MAX_GRAMMAR_CHARS} characters", "grammar")
        if schema is not None:
            raise BadRequest("give response_format json or a grammar, not both", "grammar")
        return {"grammar": grammar}
    if schema is None:
        return {}
    try:
        return {"json_schema": schema_text(schema)}
    except InvalidParameters as exc:
        raise BadRequest(str(exc), "response_format") from None
