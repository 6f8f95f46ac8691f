"""Structured output: send a JSON schema in each server's dialect, then parse and validate.

Servers disagree on how a schema is passed. TGI takes `{"type": "json", "value": schema}`;
the llama-cpp-python server takes `{"type": "json_object", "schema": schema}` on the chat
route and silently ignores the OpenAI `json_schema` form; on its completion route it takes
only a GBNF `grammar`. vLLM and OpenAI take the OpenAI `json_schema` form. Whatever the
server enforces, the reply is validated here with pydantic.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..errors import StructuredOutputError

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


@functools.lru_cache(maxsize=64)
def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a pydantic model (or any type pydantic can describe)."""
    return TypeAdapter(model).json_schema()


def chat_response_format(server: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The `response_format` argument of a Messages API call for this server kind."""
    if server == "tgi":
        return {"type": "json", "value": schema}
    if server == "llama_cpp_python":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}


@functools.lru_cache(maxsize=64)
def _gbnf(schema_json: str) -> str | None:
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError:
        return None
    return json_schema_to_gbnf(schema_json)


def _without_length_limits(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_length_limits(v) for k, v in node.items() if k not in ("maxLength", "minLength")}
    if isinstance(node, list):
        return [_without_length_limits(v) for v in node]
    return node


def gbnf_grammar(schema: dict[str, Any]) -> str | None:
    """A GBNF grammar for `schema` (via llama-cpp-python's converter), or None if it is not installed.

    String length limits are left to validation: the converter spells `maxLength: n` as n nested
    optional rules, which slows llama.cpp's grammar sampling for no gain in validity.
    """
    # key order matters: the grammar fixes property order, which must match the few-shot examples
    grammar = _gbnf(json.dumps(_without_length_limits(schema)))
    if grammar:
        # JSON strings hold no raw control characters; llama-cpp-python's converter allows them, and a base
        # model then runs a string on over newlines (`"]}, ```\nOutput: ...`) until max_tokens
        grammar = grammar.replace('char ::= [^"\\\\] |', 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |')
    return grammar


def completion_schema_fields(server: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Extra body fields of an OpenAI `/v1/completions` request that constrain the output."""
    if server == "llama_cpp_python":
        grammar = gbnf_grammar(schema)
        return {"grammar": grammar} if grammar else {}
    if server == "llama_cpp":
        return {"json_schema": schema}
    if server == "vllm":
        return {"structured_outputs": {"json": schema}}
    return {}


def extract_json(text: str) -> Any:
    """Parse the JSON value in a reply, tolerating code fences and text around it.

    Raises:
        `StructuredOutputError`: no JSON value could be found.
    """
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
            return value
        except json.JSONDecodeError:
            continue
    raise StructuredOutputError(f"No JSON value in the reply: {text[:200]!r}")


def parse_reply(text: str, model: type[Any]) -> Any:
    """Extract and validate a reply against `model`; raises `StructuredOutputError` saying why."""
    return validate_value(extract_json(text), model, text)


@functools.lru_cache(maxsize=64)
def _cached_adapter(model: Any) -> TypeAdapter:
    return TypeAdapter(model)


def _adapter(model: Any) -> TypeAdapter:
    """Building a TypeAdapter costs about as much as validating hundreds of replies: reuse it."""
    try:
        return _cached_adapter(model)
    except TypeError:  # unhashable type annotation
        return TypeAdapter(model)


def validate_value(value: Any, model: Any, text: str | None = None) -> Any:
    """Validate an already parsed JSON value against `model`; raises `StructuredOutputError` saying why."""
    try:
        return _adapter(model).validate_python(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:5])
        shown = text if text is not None else json.dumps(value, ensure_ascii=False, default=str)
        raise StructuredOutputError(f"Reply does not match the schema ({problems}): {shown[:200]!r}") from exc


def rows_schema(item: dict[str, Any], n: int) -> dict[str, Any]:
    """The schema of a several-rows reply: an object with keys "1".."n", each an `item`."""
    item = dict(item)
    defs = item.pop("$defs", None)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {str(i): item for i in range(1, n + 1)},
        "required": [str(i) for i in range(1, n + 1)],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    return schema
