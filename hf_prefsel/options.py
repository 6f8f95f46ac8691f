"""Front-end options generated from the config dataclasses: one source for names, types, defaults and help.

Every config documents its fields in its docstring's `Args:` section (the `huggingface_hub`/TRL docstring style).
`option()` reads a field's type, default and that help text, by a dotted path through nested configs
(`"cluster.n_clusters"` on `TacosConfig`); the CLI turns options into `argparse` arguments and the Space into
widgets, and `build_config()` turns the values a person gave back into the config. Nothing about an option is
written twice. (TRL keeps help in `field(metadata=...)`; our docstrings already held it, so we read them instead.)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from .errors import ConfigError

_ENTRY = re.compile(r"^(\s*)(\w+) \(`")
_NAME = re.compile(r"(?:^|,\s*)(\w+) \(`")


@functools.lru_cache(maxsize=None)
def field_help(cls: type) -> dict[str, str]:
    """`{field: help}` from the `Args:` section of a dataclass's docstring (continuation lines joined)."""
    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() in ("Args:", "Attributes:"))
    except StopIteration:
        return {}
    out: dict[str, str] = {}
    entry: list[str] = []
    indent: int | None = None

    def flush() -> None:
        if not entry:
            return
        text = " ".join(part.strip() for part in entry)
        head, _, body = text.partition("): ")
        names = _NAME.findall(head + ")")
        for name in names:
            out[name] = body.strip() or head
        entry.clear()

    for line in lines[start + 1:]:
        if not line.strip():
            continue
        match = _ENTRY.match(line)
        depth = len(line) - len(line.lstrip())
        if indent is None and match:
            indent = depth
        if indent is not None and depth < indent:
            break  # the next section (Example:, Returns:)
        if match and depth == indent:
            flush()
        entry.append(line)
    flush()
    return out


@dataclass(frozen=True)
class Option:
    """One configurable value: where it lives, its type and default, and its help."""

    path: str
    annotation: Any
    default: Any
    help: str

    @property
    def choices(self) -> tuple[Any, ...] | None:
        args = [a for a in _union_args(self.annotation) if typing.get_origin(a) is Literal]
        return tuple(typing.get_args(args[0])) if args else None

    @property
    def base_type(self) -> type:
        """`int`, `float`, `str`, `bool`, `list` or `dict` (the first non-`None` member of a union)."""
        for arg in _union_args(self.annotation):
            if arg is type(None):
                continue
            if typing.get_origin(arg) is Literal:
                return type(typing.get_args(arg)[0])
            origin = typing.get_origin(arg) or arg
            return origin if isinstance(origin, type) else str
        return str

    @property
    def optional(self) -> bool:
        return type(None) in _union_args(self.annotation)


def _union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def option(cls: type, path: str) -> Option:
    """The `Option` at `path` ("judge.swap") of the dataclass `cls`."""
    owner = cls
    parts = path.split(".")
    for i, name in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(owner)}
        if name not in fields:
            raise ConfigError(f"{owner.__name__} has no field {name!r} (option path {path!r}).")
        hints = typing.get_type_hints(owner)
        if i < len(parts) - 1:
            owner = hints[name]
            continue
        return Option(path, hints[name], _field_default(fields[name]), field_help(owner).get(name, ""))
    raise ConfigError(f"Empty option path for {cls.__name__}.")


def build_config(cls: type, values: Mapping[str, Any], base: Any = None) -> Any:
    """A `cls` instance from `{dotted path: value}` (values left out keep their defaults, or `base`'s).

    Nested configs are rebuilt with `dataclasses.replace`, so each one validates its own fields.
    """
    nested: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            top[head] = value
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name, sub in nested.items():
        current = getattr(base, name) if base is not None else _field_default(fields[name])
        top[name] = build_config(hints[name], sub, current) if current is None else _replace(current, sub, hints[name])
    if base is not None:
        return dataclasses.replace(base, **top)
    return cls(**top)


def _replace(current: Any, values: Mapping[str, Any], cls: type) -> Any:
    deep = {k: v for k, v in values.items() if "." in k}
    flat = {k: v for k, v in values.items() if "." not in k}
    out = dataclasses.replace(current, **flat) if flat else current
    return build_config(cls, deep, out) if deep else out


def split_config(cls: type, config: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """`(config, other kwargs)` for components that take a config object or its fields as keyword arguments
    (`OpenTagger(llm, OpenTaggerConfig(...))` and `OpenTagger(llm, instruction_column="q")` are the same): fields
    given as keywords override the config's."""
    names = {f.name for f in dataclasses.fields(cls)}
    fields = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
    base = config if config is not None else cls()
    if not isinstance(base, cls):
        raise ConfigError(f"config must be a {cls.__name__}, got {type(base).__name__}.")
    return (dataclasses.replace(base, **fields) if fields else base), kwargs


__all__ = ["Option", "build_config", "field_help", "option", "split_config"]
