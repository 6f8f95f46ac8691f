"""The parts of a `Taxonomy` (nodes, axes, axis values, prompt units) and how each is read from YAML/JSON.

Parsing checks every field where it is read, so an error names the node path (e.g. "at physics/optics") and the
fix. The file format itself is described in `hf_prefsel.tap.taxonomy`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..errors import ConfigError

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
NODE_KEYS = {"id", "names", "weight", "quota", "description", "children"}
AXIS_KEYS = {"id", "names", "values", "description"}
VALUE_KEYS = {"id", "names", "weight", "description"}
TOP_KEYS = {"name", "description", "languages", "axes", "nodes", "source", "format"}


# ---------------------------------------------------------------------------------------------- data classes


def _name_in(names: Mapping[str, str], default: str, language: str, fallback: Sequence[str]) -> str:
    for lang in (language, *fallback):
        if lang in names:
            return names[lang]
    return next(iter(names.values()), default)


@dataclass
class TaxonomyNode:
    """One node of the tree; a node without children is a leaf (a sampling unit).

    Args:
        id (`str`): unique in the whole taxonomy (letters, digits, `_`, `.`, `-`); used in data rows and reports.
        names (`dict[str, str]`): display name per language code, e.g. `{"en": "Physics", "zh": "物理学"}`.
        weight (`float`, defaults to 1.0): share relative to its siblings (see `Taxonomy.leaf_quotas`).
        quota (`int`, *optional*): an exact number of prompts for this subtree, overriding the weights above it.
        description (`dict[str, str]`, *optional*): a short scope note per language, shown to the prompt writer.
        children (`list[TaxonomyNode]`): sub-nodes.
    """

    id: str
    names: dict[str, str]
    weight: float = 1.0
    quota: int | None = None
    description: dict[str, str] = field(default_factory=dict)
    children: list["TaxonomyNode"] = field(default_factory=list)

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def name(self, language: str, fallback: Sequence[str] = ()) -> str:
        """The name in `language`, else in the first of `fallback` that exists, else any name."""
        return _name_in(self.names, self.id, language, fallback)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "names": dict(self.names)}
        if self.weight != 1.0:
            out["weight"] = self.weight
        if self.quota is not None:
            out["quota"] = self.quota
        if self.description:
            out["description"] = dict(self.description)
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out


@dataclass
class AxisValue:
    """One value of an orthogonal axis, e.g. task type `coding`.

    Args:
        id (`str`): unique within its axis.
        names (`dict[str, str]`): display name per language.
        weight (`float`, defaults to 1.0): relative share of prompts that get this value.
        description (`dict[str, str]`, *optional*): what the value means, per language.
    """

    id: str
    names: dict[str, str]
    weight: float = 1.0
    description: dict[str, str] = field(default_factory=dict)

    def name(self, language: str, fallback: Sequence[str] = ()) -> str:
        """The name in `language`, else in the first of `fallback` that exists, else any name."""
        return _name_in(self.names, self.id, language, fallback)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "names": dict(self.names)}
        if self.weight != 1.0:
            out["weight"] = self.weight
        if self.description:
            out["description"] = dict(self.description)
        return out


@dataclass
class TaxonomyAxis:
    """An orthogonal dimension crossed with every leaf (task type, difficulty, persona, ...).

    Args:
        id (`str`): unique among axes; becomes a column of the generated data.
        names (`dict[str, str]`): display name per language.
        values (`list[AxisValue]`): at least one.
        description (`dict[str, str]`, *optional*).
    """

    id: str
    names: dict[str, str]
    values: list[AxisValue]
    description: dict[str, str] = field(default_factory=dict)

    def value(self, value_id: str) -> AxisValue:
        for v in self.values:
            if v.id == value_id:
                return v
        raise ConfigError(f"Axis {self.id!r} has no value {value_id!r}; its values are {[v.id for v in self.values]}.")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "names": dict(self.names), "values": [v.to_dict() for v in self.values]}
        if self.description:
            out["description"] = dict(self.description)
        return out


@dataclass(frozen=True)
class PromptUnit:
    """A leaf crossed with one value per axis, and how many prompts it should get.

    Args:
        leaf_id (`str`): the taxonomy leaf.
        axes (`tuple[tuple[str, str], ...]`): `(axis id, value id)` pairs, in the taxonomy's axis order.
        quota (`int`): prompts wanted for this unit.
    """

    leaf_id: str
    axes: tuple[tuple[str, str], ...]
    quota: int

    @property
    def key(self) -> str:
        """A stable string id, e.g. `"mechanics|task_type=coding|difficulty=easy"`."""
        return "|".join([self.leaf_id] + [f"{a}={v}" for a, v in self.axes])

    @property
    def axis_values(self) -> dict[str, str]:
        return dict(self.axes)


# ---------------------------------------------------------------------------------------------- parsing


def _where(path: str) -> str:
    return f" (at {path})" if path else ""


def parse_names(value: Any, path: str, what: str = "names") -> dict[str, str]:
    """A `{language code: text}` mapping with whitespace collapsed; `what` and `path` name it in errors."""
    if isinstance(value, str):
        raise ConfigError(
            f"{what} must map language codes to names, e.g. {{en: Physics, zh: 物理学}}, got the string {value!r}"
            f"{_where(path)}."
        )
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{what} must be a non-empty mapping of language code to text{_where(path)}, got {value!r}.")
    out: dict[str, str] = {}
    for lang, text in value.items():
        if not isinstance(lang, str) or not LANG_RE.match(lang):
            raise ConfigError(f"{lang!r} is not a language code such as 'en', 'zh' or 'pt-BR'{_where(path)}.")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{what}[{lang!r}] must be a non-empty string{_where(path)}, got {text!r}.")
        out[lang] = " ".join(text.split())
    return out


def check_weight(value: Any, path: str) -> float:
    """A positive finite weight (1.0 when absent)."""
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"weight must be a positive number{_where(path)}, got {value!r}. Use quota: 0 to exclude a node.")
    return float(value)


def check_quota(value: Any, path: str) -> int | None:
    """A whole number >= 0, or `None` when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"quota must be a whole number >= 0{_where(path)}, got {value!r}.")
    return value


def check_id(value: Any, path: str, what: str = "id") -> str:
    """An id usable in data rows and file names (letters, digits, `_`, `.`, `-`)."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ConfigError(
            f"{what} {value!r} is not valid{_where(path)}: use letters, digits, '_', '.' and '-', starting with a "
            "letter or digit."
        )
    return value


def check_keys(data: Mapping, allowed: set[str], path: str) -> None:
    """Refuse unknown keys, so a typo (`weigth:`) is an error rather than silently ignored."""
    extra = sorted(set(data) - allowed)
    if extra:
        raise ConfigError(f"Unknown key(s) {extra}{_where(path)}; allowed keys are {sorted(allowed)}.")


def parse_node(data: Any, path: str) -> TaxonomyNode:
    """A node and its subtree; `path` is the parent's node path, for messages."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"A node must be a mapping with id and names{_where(path)}, got {type(data).__name__}.")
    check_keys(data, NODE_KEYS, path)
    if "id" not in data:
        raise ConfigError(f"A node has no id{_where(path)}; give every node a unique id.")
    node_id = check_id(data["id"], path)
    here = f"{path}/{node_id}" if path else node_id
    children_data = data.get("children") or []
    if not isinstance(children_data, list):
        raise ConfigError(f"children must be a list of nodes{_where(here)}.")
    return TaxonomyNode(
        id=node_id,
        names=parse_names(data.get("names"), here),
        weight=check_weight(data.get("weight"), here),
        quota=check_quota(data.get("quota"), here),
        description=parse_names(data["description"], here, "description") if data.get("description") else {},
        children=[parse_node(c, here) for c in children_data],
    )


def parse_axis(data: Any, index: int) -> TaxonomyAxis:
    """The `index`-th entry of `axes:`."""
    path = f"axes[{index}]"
    if not isinstance(data, Mapping):
        raise ConfigError(f"An axis must be a mapping with id, names and values{_where(path)}.")
    check_keys(data, AXIS_KEYS, path)
    axis_id = check_id(data.get("id"), path, "axis id")
    path = f"axis {axis_id}"
    values = data.get("values")
    if not isinstance(values, list) or not values:
        raise ConfigError(f"An axis needs a non-empty list of values{_where(path)}.")
    parsed = []
    for j, v in enumerate(values):
        vpath = f"{path} value {j}"
        if not isinstance(v, Mapping):
            raise ConfigError(f"An axis value must be a mapping with id and names{_where(vpath)}.")
        check_keys(v, VALUE_KEYS, vpath)
        vid = check_id(v.get("id"), vpath, "axis value id")
        vpath = f"{path} value {vid}"
        parsed.append(
            AxisValue(
                id=vid,
                names=parse_names(v.get("names"), vpath),
                weight=check_weight(v.get("weight"), vpath),
                description=parse_names(v["description"], vpath, "description") if v.get("description") else {},
            )
        )
    return TaxonomyAxis(
        id=axis_id,
        names=parse_names(data.get("names"), path),
        values=parsed,
        description=parse_names(data["description"], path, "description") if data.get("description") else {},
    )


def check_tree(
    name: str, languages: Sequence[str], nodes: Sequence[TaxonomyNode], axes: Sequence[TaxonomyAxis]
) -> tuple[dict[str, TaxonomyNode], dict[str, str | None]]:
    """Check a whole taxonomy; returns node id → node and node id → parent id (`None` at the top level).

    Raises `ConfigError` naming the first problem and how to fix it.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("A taxonomy needs a non-empty `name`.")
    if not languages:
        raise ConfigError("A taxonomy needs `languages`, the codes every node is named in, e.g. [en, zh].")
    for lang in languages:
        if not isinstance(lang, str) or not LANG_RE.match(lang):
            raise ConfigError(f"{lang!r} in `languages` is not a language code such as 'en' or 'zh'.")
    if len(set(languages)) != len(languages):
        raise ConfigError(f"`languages` lists a code twice: {languages}.")
    if not nodes:
        raise ConfigError(f"Taxonomy {name!r} has no nodes; add at least one under `nodes:`.")
    index: dict[str, TaxonomyNode] = {}
    parent: dict[str, str | None] = {}
    paths: dict[str, str] = {}

    def visit(node: TaxonomyNode, up: str | None, path: str) -> None:
        here = f"{path}/{node.id}" if path else node.id
        if node.id in index:
            raise ConfigError(
                f"Node id {node.id!r} is used twice (at {paths[node.id]} and at {here}); ids must be unique in the "
                "whole taxonomy, e.g. prefix them with the parent's id."
            )
        missing = [lang for lang in languages if lang not in node.names]
        if missing:
            raise ConfigError(
                f"Node {here} has no name in {missing}; every node needs a name in each of the taxonomy's "
                f"languages {languages} (add them under `names:`, or drop the language from `languages`)."
            )
        check_weight(node.weight, here)
        check_quota(node.quota, here)
        if node.quota is not None and node.children:
            fixed = sum(c.quota for c in node.children if c.quota is not None)
            if fixed > node.quota:
                raise ConfigError(
                    f"The quotas of the children of {here} add up to {fixed}, more than its own quota {node.quota}. "
                    "Raise the parent's quota or lower the children's."
                )
        index[node.id] = node
        parent[node.id] = up
        paths[node.id] = here
        for child in node.children:
            visit(child, node.id, here)

    for top in nodes:
        visit(top, None, "")
    axis_ids: set[str] = set()
    reserved = {"leaf_id", "node_path", "prompt", "language"}
    for axis in axes:
        if axis.id in axis_ids or axis.id in reserved:
            raise ConfigError(f"Axis id {axis.id!r} is used twice or is reserved ({sorted(reserved)}); rename it.")
        axis_ids.add(axis.id)
        if not axis.values:
            raise ConfigError(f"Axis {axis.id!r} has no values.")
        missing = [lang for lang in languages if lang not in axis.names]
        if missing:
            raise ConfigError(f"Axis {axis.id!r} has no name in {missing}; name it in every language {languages}.")
        seen: set[str] = set()
        for value in axis.values:
            if value.id in seen:
                raise ConfigError(f"Axis {axis.id!r} lists the value {value.id!r} twice.")
            seen.add(value.id)
            check_weight(value.weight, f"axis {axis.id} value {value.id}")
            missing = [lang for lang in languages if lang not in value.names]
            if missing:
                raise ConfigError(
                    f"Value {value.id!r} of axis {axis.id!r} has no name in {missing}; name it in every language "
                    f"{languages}."
                )
    return index, parent


__all__ = ["AxisValue", "PromptUnit", "TaxonomyAxis", "TaxonomyNode", "check_tree"]
