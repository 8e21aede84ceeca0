"""Structured output: which JSON schemas llama.cpp's grammar engine can hold an answer to.

llama.cpp (this build: llguidance) turns a JSON schema into a grammar and samples only the
tokens it allows. A schema keyword it does not understand does not fail there: the request
silently runs unconstrained (measured here with ``not``, ``if``, ``uniqueItems``,
``contains``). So a schema is checked first against the keywords that are known to hold,
and anything else is refused by name, before the engine sees it.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidParameters

# Keywords that constrain the answer and that the engine enforces.
ENFORCED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
        "pattern",
        "format",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
    }
)
# Keywords that say something about the schema but constrain nothing: allowed, ignored.
ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
FORMATS = frozenset(
    {"date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SUBSCHEMA_ONE = ("items", "additionalProperties")
MAX_SCHEMA_BYTES = 256 * 1024
JSON_OBJECT = {"type": "object"}  # response_format {"type": "json_object"}: any object


def check_schema(schema: Any, where: str = "schema") -> None:
    """Refuse (InvalidParameters, naming the keyword and where it is) a schema the engine
    cannot enforce; a schema that passes is held exactly."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise InvalidParameters(f"{where} must be a JSON schema (an object)")
    for key, value in schema.items():
        at = f"{where}.{key}"
        if key not in ENFORCED and key not in ANNOTATIONS:
            raise InvalidParameters(
                f"the JSON schema keyword {key!r} (at {at}) cannot be enforced by the "
                f"llama.cpp engine; remove it or express it with the keywords it supports "
                f"(type, properties, required, items, enum, anyOf, pattern, ...)"
            )
        if key == "type":
            kinds = value if isinstance(value, list) else [value]
            bad = [k for k in kinds if k not in JSON_TYPES]
            if bad:
                raise InvalidParameters(f"{at} names an unknown JSON type: {bad[0]!r}")
        elif key == "format" and value not in FORMATS:
            raise InvalidParameters(
                f"the JSON schema format {value!r} (at {at}) cannot be enforced; supported: "
                f"{', '.join(sorted(FORMATS))}"
            )
        elif key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
            raise InvalidParameters(
                f"{at} must point inside the schema (like #/$defs/name); other references "
                f"cannot be followed offline"
            )
        elif key in SUBSCHEMA_MAPS:
            if not isinstance(value, dict):
                raise InvalidParameters(f"{at} must be an object of schemas")
            for name, sub in value.items():
                check_schema(sub, f"{at}.{name}")
        elif key in SUBSCHEMA_LISTS:
            if not isinstance(value, list):
                raise InvalidParameters(f"{at} must be a list of schemas")
            for i, sub in enumerate(value):
                check_schema(sub, f"{at}[{i}]")
        elif key in SUBSCHEMA_ONE:
            check_schema(value, at)


def schema_text(schema: Any) -> str:
    """The checked schema as the JSON text GenerationParams carries."""
    check_schema(schema)
    text = json.dumps(schema)  # key order kept: properties are written in it
    if len(text) > MAX_SCHEMA_BYTES:
        raise InvalidParameters(f"the JSON schema is larger than {MAX_SCHEMA_BYTES // 1024} KB")
    return text
