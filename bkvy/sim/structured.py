"""Structured replies: a deterministic JSON instance of a requested schema, and which offered tool to call."""

from __future__ import annotations

import json
from typing import NamedTuple

_MAX_DEPTH = 8  # a recursive schema ($ref to itself) stops here with null


def schema_reply(schema: dict) -> str:
    """The reply text for a json_schema request: one instance of ``schema`` as compact JSON."""
    return json.dumps(_instance(schema, schema.get("$defs") or schema.get("definitions") or {}, 0))


def _instance(schema: object, defs: dict, depth: int) -> object:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _instance(defs.get(ref.rsplit("/", 1)[-1]), defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        variants = schema.get(combinator)
        if isinstance(variants, list) and variants:
            return _instance(variants[0], defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {name: _instance(sub, defs, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [_instance(schema.get("items"), defs, depth + 1)]
    return _SCALARS.get(str(kind))


_SCALARS: dict[str, object] = {"string": "lorem", "integer": 1, "number": 1.5, "boolean": True, "null": None}


class ToolPick(NamedTuple):
    name: str
    arguments: str  # JSON: an instance of the tool's parameters schema, "{}" for a tool that takes none


def pick_tool(tools: dict[str, object], last_user_text: str) -> ToolPick | None:
    """The offered tool (name -> parameters schema) the user's last words name, else the first: lets a test steer a
    multi-round session. Its arguments fill its schema, as a model's would: a forced tool is how langchain and
    litellm ask for structured output, and its arguments are the answer."""
    named = [name for name in tools if name and name in last_user_text]
    name = named[0] if named else next(iter(tools), None)
    return None if name is None else ToolPick(name, _arguments(tools[name]))


def _arguments(schema: object) -> str:
    if not isinstance(schema, dict):
        return "{}"
    arguments = schema_reply(schema)
    return arguments if arguments.startswith("{") else "{}"
