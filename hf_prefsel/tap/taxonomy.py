"""The `Taxonomy` artifact: a multilingual tree of use cases with weights, quotas and orthogonal axes.

TaP steers the *composition* of generated data with a taxonomy: every leaf (e.g. "Physics › Mechanics") is a
sampling unit, optionally crossed with orthogonal axes (task type, difficulty). Weights and quotas on nodes say how
many prompts each part of the tree should receive, so a dataset's make-up is specified up front and checked after
generation rather than left to whatever an LLM happens to write.

A taxonomy file is YAML or JSON:

```yaml
name: my-taxonomy
languages: [en, zh]          # every node and axis value must be named in each of them
axes:                        # optional, crossed with every leaf
  - id: difficulty
    names: {en: Difficulty, zh: 难度}
    values:
      - {id: easy, names: {en: easy, zh: 简单}}
      - {id: hard, names: {en: hard, zh: 困难}, weight: 0.5}
nodes:
  - id: physics
    names: {en: Physics, zh: 物理学}
    weight: 2                # relative to its siblings (default 1)
    children:
      - {id: mechanics, names: {en: Mechanics, zh: 力学}}
      - {id: optics, names: {en: Optics, zh: 光学}, quota: 10}   # exactly 10 prompts for this subtree
```
"""

from __future__ import annotations

import html
import itertools
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import ArtifactError, ConfigError, DataError, DependencyError
from ..hub import Artifact

TAXONOMY_DIR = Path(__file__).parent / "taxonomies"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_NODE_KEYS = {"id", "names", "weight", "quota", "description", "children"}
_AXIS_KEYS = {"id", "names", "values", "description"}
_VALUE_KEYS = {"id", "names", "weight", "description"}
_TOP_KEYS = {"name", "description", "languages", "axes", "nodes", "source", "format"}


# ---------------------------------------------------------------------------------------------- data classes


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
        for lang in (language, *fallback):
            if lang in self.names:
                return self.names[lang]
        return next(iter(self.names.values()), self.id)

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
        for lang in (language, *fallback):
            if lang in self.names:
                return self.names[lang]
        return next(iter(self.names.values()), self.id)

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


def _names(value: Any, path: str, what: str = "names") -> dict[str, str]:
    if isinstance(value, str):
        raise ConfigError(
            f"{what} must map language codes to names, e.g. {{en: Physics, zh: 物理学}}, got the string {value!r}"
            f"{_where(path)}."
        )
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{what} must be a non-empty mapping of language code to text{_where(path)}, got {value!r}.")
    out: dict[str, str] = {}
    for lang, text in value.items():
        if not isinstance(lang, str) or not _LANG_RE.match(lang):
            raise ConfigError(f"{lang!r} is not a language code such as 'en', 'zh' or 'pt-BR'{_where(path)}.")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{what}[{lang!r}] must be a non-empty string{_where(path)}, got {text!r}.")
        out[lang] = " ".join(text.split())
    return out


def _weight(value: Any, path: str) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"weight must be a positive number{_where(path)}, got {value!r}. Use quota: 0 to exclude a node.")
    return float(value)


def _quota(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"quota must be a whole number >= 0{_where(path)}, got {value!r}.")
    return value


def _check_id(value: Any, path: str, what: str = "id") -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ConfigError(
            f"{what} {value!r} is not valid{_where(path)}: use letters, digits, '_', '.' and '-', starting with a "
            "letter or digit."
        )
    return value


def _unknown(data: Mapping, allowed: set[str], path: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ConfigError(f"Unknown key(s) {extra}{_where(path)}; allowed keys are {sorted(allowed)}.")


def _parse_node(data: Any, path: str) -> TaxonomyNode:
    if not isinstance(data, Mapping):
        raise ConfigError(f"A node must be a mapping with id and names{_where(path)}, got {type(data).__name__}.")
    _unknown(data, _NODE_KEYS, path)
    if "id" not in data:
        raise ConfigError(f"A node has no id{_where(path)}; give every node a unique id.")
    node_id = _check_id(data["id"], path)
    here = f"{path}/{node_id}" if path else node_id
    children_data = data.get("children") or []
    if not isinstance(children_data, list):
        raise ConfigError(f"children must be a list of nodes{_where(here)}.")
    return TaxonomyNode(
        id=node_id,
        names=_names(data.get("names"), here),
        weight=_weight(data.get("weight"), here),
        quota=_quota(data.get("quota"), here),
        description=_names(data["description"], here, "description") if data.get("description") else {},
        children=[_parse_node(c, here) for c in children_data],
    )


def _parse_axis(data: Any, index: int) -> TaxonomyAxis:
    path = f"axes[{index}]"
    if not isinstance(data, Mapping):
        raise ConfigError(f"An axis must be a mapping with id, names and values{_where(path)}.")
    _unknown(data, _AXIS_KEYS, path)
    axis_id = _check_id(data.get("id"), path, "axis id")
    path = f"axis {axis_id}"
    values = data.get("values")
    if not isinstance(values, list) or not values:
        raise ConfigError(f"An axis needs a non-empty list of values{_where(path)}.")
    parsed = []
    for j, v in enumerate(values):
        vpath = f"{path} value {j}"
        if not isinstance(v, Mapping):
            raise ConfigError(f"An axis value must be a mapping with id and names{_where(vpath)}.")
        _unknown(v, _VALUE_KEYS, vpath)
        vid = _check_id(v.get("id"), vpath, "axis value id")
        vpath = f"{path} value {vid}"
        parsed.append(
            AxisValue(
                id=vid,
                names=_names(v.get("names"), vpath),
                weight=_weight(v.get("weight"), vpath),
                description=_names(v["description"], vpath, "description") if v.get("description") else {},
            )
        )
    return TaxonomyAxis(
        id=axis_id,
        names=_names(data.get("names"), path),
        values=parsed,
        description=_names(data["description"], path, "description") if data.get("description") else {},
    )


def _largest_remainder(total: int, weights: Sequence[float], order: Sequence[int] | None = None) -> list[int]:
    """Split `total` into integers proportional to `weights` that add up to `total` exactly.

    Ties between equal remainders go to the earlier index in `order` (default: index order), which lets callers
    rotate who gets the odd unit.
    """
    n = len(weights)
    if total <= 0 or n == 0:
        return [0] * n
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        w = np.ones(n)
    exact = total * w / w.sum()
    base = np.floor(exact + 1e-9).astype(np.int64)
    left = int(total - base.sum())
    rank = {i: r for r, i in enumerate(order if order is not None else range(n))}
    by_remainder = sorted(range(n), key=lambda i: (-(exact[i] - base[i]), rank[i]))
    for i in by_remainder[:left]:
        base[i] += 1
    return base.tolist()


# ---------------------------------------------------------------------------------------------- taxonomy


class Taxonomy(Artifact):
    """A hierarchical, multilingual taxonomy that drives TaP prompt generation.

    Build it from a YAML/JSON file (`Taxonomy.load`), a dict, a `KnowledgeTree` (`from_knowledge_tree`) or a tagged
    dataset (`from_dataset`). It validates on construction: unique ids, positive weights, non-negative quotas that
    fit inside their parents' quotas, and a name in every declared language for every node and axis value.

    Args:
        nodes (`list[TaxonomyNode]`): the top-level nodes (disciplines); the root is implicit.
        name (`str`): a short name, e.g. `"general-assistant"`.
        languages (`list[str]`): language codes every node is named in; the first is the fallback language.
        axes (`list[TaxonomyAxis]`, *optional*): orthogonal dimensions crossed with every leaf.
        description (`dict[str, str]`, *optional*): what the taxonomy covers, per language.
        source (`str`, *optional*): where it came from (a file, a dataset, a tree) for cards.

    Example:
        >>> tax = Taxonomy.load("default")
        >>> quotas = tax.leaf_quotas(per_leaf=2)
        >>> units = tax.units(quotas)
        >>> tax.to_html("taxonomy.html")
    """

    artifact_type: ClassVar[str] = "taxonomy"
    format_version: ClassVar[int] = 1

    def __init__(
        self,
        nodes: Sequence[TaxonomyNode],
        *,
        name: str,
        languages: Sequence[str],
        axes: Sequence[TaxonomyAxis] = (),
        description: Mapping[str, str] | None = None,
        source: str | None = None,
    ):
        self.nodes = list(nodes)
        self.name = name
        self.languages = list(languages)
        self.axes = list(axes)
        self.description = dict(description or {})
        self.source = source
        self._index: dict[str, TaxonomyNode] = {}
        self._parent: dict[str, str | None] = {}
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check the whole taxonomy; raises `ConfigError` naming the first problem and how to fix it."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("A taxonomy needs a non-empty `name`.")
        if not self.languages:
            raise ConfigError("A taxonomy needs `languages`, the codes every node is named in, e.g. [en, zh].")
        for lang in self.languages:
            if not isinstance(lang, str) or not _LANG_RE.match(lang):
                raise ConfigError(f"{lang!r} in `languages` is not a language code such as 'en' or 'zh'.")
        if len(set(self.languages)) != len(self.languages):
            raise ConfigError(f"`languages` lists a code twice: {self.languages}.")
        if not self.nodes:
            raise ConfigError(f"Taxonomy {self.name!r} has no nodes; add at least one under `nodes:`.")
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
            missing = [lang for lang in self.languages if lang not in node.names]
            if missing:
                raise ConfigError(
                    f"Node {here} has no name in {missing}; every node needs a name in each of the taxonomy's "
                    f"languages {self.languages} (add them under `names:`, or drop the language from `languages`)."
                )
            _weight(node.weight, here)
            _quota(node.quota, here)
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

        for top in self.nodes:
            visit(top, None, "")
        axis_ids: set[str] = set()
        reserved = {"leaf_id", "node_path", "prompt", "language"}
        for axis in self.axes:
            if axis.id in axis_ids or axis.id in reserved:
                raise ConfigError(f"Axis id {axis.id!r} is used twice or is reserved ({sorted(reserved)}); rename it.")
            axis_ids.add(axis.id)
            if not axis.values:
                raise ConfigError(f"Axis {axis.id!r} has no values.")
            missing = [lang for lang in self.languages if lang not in axis.names]
            if missing:
                raise ConfigError(f"Axis {axis.id!r} has no name in {missing}; name it in every language {self.languages}.")
            seen: set[str] = set()
            for value in axis.values:
                if value.id in seen:
                    raise ConfigError(f"Axis {axis.id!r} lists the value {value.id!r} twice.")
                seen.add(value.id)
                _weight(value.weight, f"axis {axis.id} value {value.id}")
                missing = [lang for lang in self.languages if lang not in value.names]
                if missing:
                    raise ConfigError(
                        f"Value {value.id!r} of axis {axis.id!r} has no name in {missing}; name it in every language "
                        f"{self.languages}."
                    )
        self._index, self._parent = index, parent

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str | None = None) -> "Taxonomy":
        """Build from the YAML/JSON structure described in the module docstring."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"A taxonomy file must hold a mapping with `name`, `languages` and `nodes`, got {type(data).__name__}.")
        _unknown(data, _TOP_KEYS, "")
        for key in ("name", "languages", "nodes"):
            if key not in data:
                raise ConfigError(f"The taxonomy has no `{key}`; a taxonomy needs `name`, `languages` and `nodes`.")
        languages = data["languages"]
        if isinstance(languages, str):
            languages = [languages]
        if not isinstance(languages, list):
            raise ConfigError(f"`languages` must be a list of codes such as [en, zh], got {languages!r}.")
        nodes = data["nodes"]
        if not isinstance(nodes, list):
            raise ConfigError("`nodes` must be a list of top-level nodes.")
        axes = data.get("axes") or []
        if not isinstance(axes, list):
            raise ConfigError("`axes` must be a list of axes.")
        desc = data.get("description")
        return cls(
            [_parse_node(n, "") for n in nodes],
            name=str(data["name"]),
            languages=languages,
            axes=[_parse_axis(a, i) for i, a in enumerate(axes)],
            description=_names(desc, "", "description") if isinstance(desc, Mapping) and desc else
            ({"en": desc} if isinstance(desc, str) and desc else {}),
            source=data.get("source") or source,
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Taxonomy":
        """Read a `.yaml`/`.yml`/`.json` taxonomy file."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Taxonomy file {str(p)!r} does not exist.")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
            raise ConfigError(f"{str(p)!r} is not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {exc}") from exc
        return cls.from_mapping(data, source=str(p))

    @classmethod
    def available(cls) -> list[str]:
        """Names of the taxonomies shipped with hf_prefsel (usable as `Taxonomy.load(name)`)."""
        return sorted(p.stem for p in TAXONOMY_DIR.glob("*.yaml"))

    @classmethod
    def load(cls, spec: str | os.PathLike[str], **hub_kwargs: Any) -> "Taxonomy":
        """Load a shipped taxonomy by name (`"default"`), a YAML/JSON file, a saved folder, or a Hub repo id.

        A folder or repo holding a TAGS `KnowledgeTree` instead is converted with `from_knowledge_tree` (defaults:
        the tree's top two levels, weighted by concepts).

        Args:
            spec (`str` or `os.PathLike`): what to load.
            **hub_kwargs: passed to `from_pretrained` for a folder or Hub repo (`repo_type`, `revision`, `subfolder`, ...).
        """
        text = str(spec)
        if text in cls.available():
            return cls.from_file(TAXONOMY_DIR / f"{text}.yaml")
        p = Path(text).expanduser()
        if p.is_file():
            if p.suffix.lower() not in (".yaml", ".yml", ".json"):
                raise ConfigError(f"{text!r}: a taxonomy file must end in .yaml, .yml or .json.")
            return cls.from_file(p)
        if p.is_dir() or text.count("/") == 1:
            try:
                return cls.from_pretrained(text, **hub_kwargs)
            except ArtifactError as exc:
                if "'knowledge_tree' artifact" in str(exc):
                    # a TAGS knowledge tree: its top two levels become the taxonomy
                    from ..tags.tree import KnowledgeTree

                    tree = KnowledgeTree.from_pretrained(text, **hub_kwargs)
                    return cls.from_knowledge_tree(tree, name=Path(text).name or "knowledge-tree")
                raise ConfigError(
                    f"Could not load the taxonomy {text!r}: {exc} Shipped taxonomies: {cls.available()}."
                ) from exc
        raise ConfigError(
            f"{text!r} is not a shipped taxonomy ({', '.join(cls.available())}), a .yaml/.json file, a folder saved with "
            "`save_pretrained`, nor a Hub repo id ('user/name')."
        )

    # ------------------------------------------------------------------ artifact
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "languages": list(self.languages)}
        if self.description:
            out["description"] = dict(self.description)
        if self.source:
            out["source"] = self.source
        if self.axes:
            out["axes"] = [a.to_dict() for a in self.axes]
        out["nodes"] = [n.to_dict() for n in self.nodes]
        return out

    @classmethod
    def from_dict(cls, data: dict, tensors: dict[str, np.ndarray] | None = None) -> "Taxonomy":
        return cls.from_mapping(data)

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The taxonomy as YAML (the same format `from_file` reads); also written to `path` if given."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), allow_unicode=True, sort_keys=False, width=120)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def card_body(self) -> str:
        depth_counts = Counter(len(self.path(leaf.id)) for leaf in self.leaves())
        lines = [
            f"**{self.name}**: {len(self._index)} nodes, {self.n_leaves} leaves (at depths "
            f"{', '.join(f'{d}: {c}' for d, c in sorted(depth_counts.items()))}), languages {', '.join(self.languages)}.",
            "",
        ]
        if self.axes:
            lines.append("Axes: " + "; ".join(f"`{a.id}` ({', '.join(v.id for v in a.values)})" for a in self.axes) + ".")
            lines.append("")
        lines += ["| top-level node | " + " | ".join(self.languages) + " | leaves |", "| --- | " + "--- | " * len(self.languages) + "--- |"]
        for top in self.nodes:
            n = sum(1 for _ in self._leaves_under(top))
            lines.append(f"| `{top.id}` | " + " | ".join(top.names[lang] for lang in self.languages) + f" | {n} |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Taxonomy(name={self.name!r}, leaves={self.n_leaves}, nodes={len(self._index)}, "
                f"languages={self.languages}, axes={[a.id for a in self.axes]})")

    def __eq__(self, other: object) -> bool:
        """Same content (the `source` note is provenance, not content, and is ignored)."""
        if not isinstance(other, Taxonomy):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        a.pop("source", None)
        b.pop("source", None)
        return a == b

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ structure
    def iter_nodes(self) -> Iterator[TaxonomyNode]:
        """All nodes, depth first, parents before children."""
        stack = list(reversed(self.nodes))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def _leaves_under(self, node: TaxonomyNode) -> Iterator[TaxonomyNode]:
        if node.is_leaf:
            yield node
        for child in node.children:
            yield from self._leaves_under(child)

    def leaves(self) -> list[TaxonomyNode]:
        """The leaves in file order."""
        return [n for n in self.iter_nodes() if n.is_leaf]

    @property
    def n_leaves(self) -> int:
        return sum(1 for n in self.iter_nodes() if n.is_leaf)

    def node(self, node_id: str) -> TaxonomyNode:
        """The node with this id; `ConfigError` if there is none."""
        try:
            return self._index[node_id]
        except KeyError:
            raise ConfigError(f"Taxonomy {self.name!r} has no node {node_id!r}.") from None

    def path(self, node_id: str) -> list[TaxonomyNode]:
        """Nodes from the top level down to `node_id` (included)."""
        out = [self.node(node_id)]
        while self._parent[out[-1].id] is not None:
            out.append(self._index[self._parent[out[-1].id]])  # type: ignore[index]
        return out[::-1]

    def path_names(self, node_id: str, language: str | None = None) -> list[str]:
        """Display names from the top level down to `node_id`, in `language` (fallback: the first language)."""
        lang = language or self.languages[0]
        return [n.name(lang, self.languages) for n in self.path(node_id)]

    def axis(self, axis_id: str) -> TaxonomyAxis:
        for axis in self.axes:
            if axis.id == axis_id:
                return axis
        raise ConfigError(f"Taxonomy {self.name!r} has no axis {axis_id!r}; its axes are {[a.id for a in self.axes]}.")

    def spread_leaves(self, k: int | None = None) -> list[TaxonomyNode]:
        """Up to `k` leaves taken round-robin over the top-level nodes, so a small run still spans the tree.

        Within a top-level node the leaves are taken in the same round-robin way over its children, recursively.
        """
        def order(node: TaxonomyNode) -> list[TaxonomyNode]:
            if node.is_leaf:
                return [node]
            lists = [order(c) for c in node.children]
            return [x for group in itertools.zip_longest(*lists) for x in group if x is not None]

        lists = [order(n) for n in self.nodes]
        leaves = [x for group in itertools.zip_longest(*lists) for x in group if x is not None]
        return leaves if k is None else leaves[: max(0, k)]

    def subset(self, leaf_ids: Iterable[str]) -> "Taxonomy":
        """A taxonomy keeping only these leaves (and their ancestors), with weights and quotas as they were."""
        keep = set(leaf_ids)
        for leaf_id in keep:
            if not self.node(leaf_id).is_leaf:
                raise ConfigError(f"{leaf_id!r} is not a leaf of {self.name!r}.")

        def prune(node: TaxonomyNode) -> TaxonomyNode | None:
            if node.is_leaf:
                return TaxonomyNode(node.id, dict(node.names), node.weight, node.quota, dict(node.description)) if node.id in keep else None
            kids = [c for c in (prune(ch) for ch in node.children) if c is not None]
            if not kids:
                return None
            quota = node.quota
            if quota is not None:
                quota = max(quota, sum(c.quota for c in kids if c.quota is not None))
            return TaxonomyNode(node.id, dict(node.names), node.weight, quota, dict(node.description), kids)

        nodes = [n for n in (prune(t) for t in self.nodes) if n is not None]
        if not nodes:
            raise ConfigError("subset() needs at least one leaf id.")
        return Taxonomy(nodes, name=self.name, languages=self.languages, axes=self.axes, description=self.description,
                        source=self.source)

    # ------------------------------------------------------------------ quotas
    def leaf_quotas(self, *, per_leaf: int | None = None, total: int | None = None) -> dict[str, int]:
        """How many prompts each leaf should get. Give exactly one of `per_leaf` and `total`.

        - `per_leaf=N`: each leaf gets `N` times the product of the weights on its path (a weight of 2 on "Coding"
          doubles every coding leaf), rounded so the sum is kept.
        - `total=T`: `T` is split top-down: each node's amount is divided among its children in proportion to their
          weights (siblings compete, so a discipline's share does not depend on how many leaves it has).

        In both modes a node with a `quota` gets exactly that many for its subtree (split among its children by
        weight, children with their own quota first), whatever the mode would have given it.

        Returns:
            `dict[str, int]`: leaf id → quota, in leaf order.
        """
        if (per_leaf is None) == (total is None):
            raise ConfigError("Give exactly one of per_leaf (prompts per leaf) and total (prompts overall).")
        amount = per_leaf if per_leaf is not None else total
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ConfigError(f"{'per_leaf' if per_leaf is not None else 'total'} must be a whole number >= 0, got {amount!r}.")
        out: dict[str, int] = {leaf.id: 0 for leaf in self.leaves()}

        def split(nodes: Sequence[TaxonomyNode], amount: int) -> None:
            fixed = [n for n in nodes if n.quota is not None]
            free = [n for n in nodes if n.quota is None]
            rest = max(0, amount - sum(n.quota for n in fixed))  # type: ignore[misc]
            for n, a in zip(free, _largest_remainder(rest, [n.weight for n in free])):
                assign(n, a)
            for n in fixed:
                assign(n, n.quota)  # type: ignore[arg-type]

        def assign(node: TaxonomyNode, amount: int) -> None:
            if node.is_leaf:
                out[node.id] = amount
            else:
                split(node.children, amount)

        if total is not None:
            split(self.nodes, total)
            return out
        # per-leaf mode: weights multiply down the path; explicit quotas take their subtree out of it
        exact: dict[str, float] = {}

        def walk(node: TaxonomyNode, factor: float) -> None:
            if node.quota is not None:
                assign(node, node.quota)
                return
            if node.is_leaf:
                exact[node.id] = per_leaf * factor * node.weight  # type: ignore[operator]
                return
            for child in node.children:
                walk(child, factor * node.weight)

        for top in self.nodes:
            walk(top, 1.0)
        if exact:
            ids = list(exact)
            counts = _largest_remainder(int(round(sum(exact.values()))), [exact[i] for i in ids])
            out.update(zip(ids, counts))
        return out

    def units(self, quotas: Mapping[str, int], axes: Sequence[str] | None = None) -> list[PromptUnit]:
        """Cross leaf quotas with the axes: each leaf's quota is spread over axis-value combinations.

        Combinations are assigned greedily to whichever is furthest behind its target share (the product of its
        values' weights) over *all* leaves so far, never twice for one leaf while another combination is free. So a
        leaf with 2 prompts gets two different combinations, and over the whole run every axis value gets its share
        even when each leaf gets fewer prompts than there are combinations.

        Args:
            quotas (`Mapping[str, int]`): leaf id → prompts, e.g. from `leaf_quotas`.
            axes (`Sequence[str]`, *optional*): ids of the axes to cross with; defaults to all; `[]` for none.

        Returns:
            `list[PromptUnit]`: units with a positive quota, leaf order first.
        """
        chosen = self.axes if axes is None else [self.axis(a) for a in axes]
        for leaf_id in quotas:
            if not self.node(leaf_id).is_leaf:
                raise ConfigError(f"{leaf_id!r} is not a leaf; quotas are given per leaf.")
        if not chosen:
            return [PromptUnit(leaf, (), q) for leaf, q in quotas.items() if q > 0]
        combos = list(itertools.product(*[range(len(a.values)) for a in chosen]))
        share = np.array([math.prod(chosen[a].values[v].weight for a, v in enumerate(c)) for c in combos])
        share /= share.sum()
        marginal = [np.array([v.weight for v in a.values]) / sum(v.weight for v in a.values) for a in chosen]
        given = np.zeros(len(combos))
        given_marginal = [np.zeros(len(a.values)) for a in chosen]
        done = 0
        units: list[PromptUnit] = []
        for leaf_id, q in quotas.items():
            counts = np.zeros(len(combos), dtype=np.int64)
            leaf_marginal = [np.zeros(len(a.values)) for a in chosen]
            for _ in range(q):
                joint_deficit = share * (done + 1) - given
                axis_deficit = [m * (done + 1) - g for m, g in zip(marginal, given_marginal)]

                def rank(c: int) -> tuple:
                    combo = combos[c]
                    # 1. a combination this leaf does not have yet; 2. axis values this leaf has fewest of (a leaf's
                    # prompts differ on every axis); 3. values furthest behind their share over the whole run;
                    # 4. the combination furthest behind; 5. file order
                    return (
                        counts[c],
                        sum(leaf_marginal[a][v] for a, v in enumerate(combo)),
                        -sum(axis_deficit[a][v] for a, v in enumerate(combo)),
                        -joint_deficit[c],
                        c,
                    )

                pick = min(range(len(combos)), key=rank)
                counts[pick] += 1
                given[pick] += 1
                for a, v in enumerate(combos[pick]):
                    leaf_marginal[a][v] += 1
                    given_marginal[a][v] += 1
                done += 1
            for c in np.flatnonzero(counts).tolist():
                axes_of = tuple((a.id, a.values[v].id) for a, v in zip(chosen, combos[c]))
                units.append(PromptUnit(leaf_id, axes_of, int(counts[c])))
        return units

    # ------------------------------------------------------------------ other sources
    @classmethod
    def from_knowledge_tree(
        cls,
        tree: Any,
        *,
        name: str = "knowledge-tree",
        language: str = "en",
        max_depth: int | None = 2,
        weight_by: str = "concepts",
    ) -> "Taxonomy":
        """Turn a TAGS `KnowledgeTree` (or its `to_dict()`) into a taxonomy.

        A knowledge tree's leaves are fine-grained concepts (often thousands); nodes at `max_depth` below the root
        become the taxonomy's leaves and everything under them is folded in. Names are in one language only (the
        tree's); add translations by editing `to_yaml()` output.

        Args:
            tree (`KnowledgeTree` or `dict`): anything with `names` and `parents` (root's parent is -1).
            name (`str`): the taxonomy's name.
            language (`str`, defaults to `"en"`): the language of the tree's node names.
            max_depth (`int`, *optional*, defaults to 2): depth of the taxonomy's leaves (1 = the root's children);
                `None` keeps the whole tree.
            weight_by (`"concepts" | "uniform"`): weight every node by the number of concepts under it (the
                distribution of the data the tree came from) or weight siblings equally.
        """
        data = tree.to_dict() if hasattr(tree, "to_dict") else tree
        try:
            names = [str(n) for n in data["names"]]
            parents = [int(p) for p in data["parents"]]
        except (KeyError, TypeError) as exc:
            raise DataError("from_knowledge_tree needs a KnowledgeTree or a dict with 'names' and 'parents'.") from exc
        if weight_by not in ("concepts", "uniform"):
            raise ConfigError(f"weight_by must be 'concepts' or 'uniform', got {weight_by!r}.")
        if max_depth is not None and max_depth < 1:
            raise ConfigError(f"max_depth must be >= 1 (1 = the root's children are the leaves), got {max_depth}.")
        roots = [i for i, p in enumerate(parents) if p < 0]
        if len(roots) != 1:
            raise DataError(f"A knowledge tree has exactly one root; found {len(roots)}.")
        children: dict[int, list[int]] = {}
        for i, p in enumerate(parents):
            if p >= 0:
                children.setdefault(p, []).append(i)
        concepts = [0] * len(names)

        def count(i: int) -> int:
            kids = children.get(i, [])
            concepts[i] = 1 if not kids else sum(count(c) for c in kids)
            return concepts[i]

        import sys

        sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(names) + 100))
        count(roots[0])

        def build(i: int, depth: int) -> TaxonomyNode:
            kids = children.get(i, [])
            deeper = [] if (max_depth is not None and depth >= max_depth) else kids
            return TaxonomyNode(
                id=f"{_slug(names[i])}-{i}",
                names={language: names[i]},
                weight=float(concepts[i]) if weight_by == "concepts" else 1.0,
                children=[build(c, depth + 1) for c in sorted(deeper, key=lambda c: -concepts[c])],
            )

        top = [build(c, 1) for c in sorted(children.get(roots[0], []), key=lambda c: -concepts[c])]
        if not top:
            top = [build(roots[0], 1)]
        return cls(top, name=name, languages=[language], source="KnowledgeTree")

    @classmethod
    def from_dataset(
        cls,
        data: Any,
        columns: Sequence[str],
        *,
        name: str = "from-dataset",
        language: str = "en",
        min_count: int = 1,
        max_leaves: int | None = None,
        weight_by: str = "count",
    ) -> "Taxonomy":
        """Build a taxonomy from label columns of a tagged dataset, e.g. `["category", "subcategory"]`.

        Each column is one level (coarse first). A single column may hold lists of tags (e.g. TACOS `tags`); then
        each tag is a leaf. Rows with a missing label at some level stop at the level above.

        Args:
            data (`datasets.Dataset` or iterable of dicts): the tagged rows.
            columns (`Sequence[str]`): label columns, top level first.
            name (`str`), language (`str`, defaults to `"en"`): the taxonomy's name and the labels' language.
            min_count (`int`, defaults to 1): leaves seen fewer times are dropped.
            max_leaves (`int`, *optional*): keep only the most frequent leaves.
            weight_by (`"count" | "uniform"`): weight nodes by their row counts, or equally.
        """
        if not columns:
            raise ConfigError("from_dataset needs at least one label column.")
        if weight_by not in ("count", "uniform"):
            raise ConfigError(f"weight_by must be 'count' or 'uniform', got {weight_by!r}.")
        rows = data if not hasattr(data, "column_names") else data.select_columns(list(columns))
        if hasattr(data, "column_names"):
            for col in columns:
                if col not in data.column_names:
                    from ..errors import MissingColumnError

                    raise MissingColumnError(col, data.column_names)
        counts: Counter = Counter()
        for row in rows:
            values = [row.get(c) for c in columns]
            if len(columns) == 1 and isinstance(values[0], list):
                for tag in values[0]:
                    if isinstance(tag, str) and tag.strip():
                        counts[(" ".join(tag.split()),)] += 1
                continue
            path: list[str] = []
            for v in values:
                if not isinstance(v, str) or not v.strip():
                    break
                path.append(" ".join(v.split()))
            if path:
                counts[tuple(path)] += 1
        counts = Counter({p: c for p, c in counts.items() if c >= min_count})
        if max_leaves is not None:
            counts = Counter(dict(counts.most_common(max_leaves)))
        if not counts:
            raise DataError(f"No labels found in columns {list(columns)} (with min_count={min_count}).")

        tree: dict = {}
        for path, c in counts.items():
            level = tree
            for part in path:
                entry = level.setdefault(part, {"count": 0, "children": {}})
                entry["count"] += c
                level = entry["children"]
        used: Counter = Counter()

        def build(label: str, entry: dict, prefix: str) -> TaxonomyNode:
            base = f"{prefix}{_slug(label)}"
            used[base] += 1
            node_id = base if used[base] == 1 else f"{base}-{used[base]}"
            kids = sorted(entry["children"].items(), key=lambda kv: -kv[1]["count"])
            return TaxonomyNode(
                id=node_id,
                names={language: label},
                weight=float(entry["count"]) if weight_by == "count" else 1.0,
                children=[build(k, v, f"{node_id}.") for k, v in kids],
            )

        top = [build(k, v, "") for k, v in sorted(tree.items(), key=lambda kv: -kv[1]["count"])]
        return cls(top, name=name, languages=[language], source=f"dataset columns {list(columns)}")

    # ------------------------------------------------------------------ pictures
    def _layout(self, max_depth: int | None) -> tuple[list[tuple[TaxonomyNode, int, float]], list[tuple[int, int]], int]:
        """Tree layout: (node, depth, y) rows, parent→child edges as row indices, and the number of leaf slots."""
        rows: list[tuple[TaxonomyNode, int, float]] = []
        edges: list[tuple[int, int]] = []
        slot = [0]

        def place(node: TaxonomyNode, depth: int) -> int:
            index = len(rows)
            rows.append((node, depth, 0.0))
            kids = node.children if (max_depth is None or depth < max_depth) else []
            if not kids:
                y = float(slot[0])
                slot[0] += 1
            else:
                ys = []
                for child in kids:
                    ci = place(child, depth + 1)
                    edges.append((index, ci))
                    ys.append(rows[ci][2])
                y = (ys[0] + ys[-1]) / 2
            rows[index] = (node, depth, y)
            return index

        for top in self.nodes:
            place(top, 1)
        return rows, edges, slot[0]

    def _label(self, node: TaxonomyNode, languages: Sequence[str]) -> str:
        return " / ".join(dict.fromkeys(node.name(lang, self.languages) for lang in languages))

    def to_html(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        languages: Sequence[str] | None = None,
        quotas: Mapping[str, int] | None = None,
        realized: Mapping[str, int] | None = None,
        max_depth: int | None = None,
        title: str | None = None,
    ) -> str:
        """A self-contained HTML page (inline SVG, no scripts, no network) drawing the taxonomy as a tree.

        Args:
            path (`str`, *optional*): also write the page there.
            languages (`Sequence[str]`, *optional*): languages of the labels (default: all), shown as "en / zh".
            quotas (`Mapping[str, int]`, *optional*): leaf quotas to print next to the leaves.
            realized (`Mapping[str, int]`, *optional*): prompts actually generated per leaf, printed as "got/quota".
            max_depth (`int`, *optional*): draw only this many levels.
            title (`str`, *optional*): the page heading.

        Returns:
            `str`: the HTML text.
        """
        langs = list(languages or self.languages)
        rows, edges, n_slots = self._layout(max_depth)
        depth = max(d for _, d, _ in rows)
        row_h, pad = 20, 12
        palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
        top_color = {n.id: palette[i % len(palette)] for i, n in enumerate(self.nodes)}
        node_top: dict[str, str] = {}
        for top in self.nodes:
            for n in self._iter_subtree(top):
                node_top[n.id] = top.id
        texts: list[str] = []
        for node, _, _ in rows:
            extra = []
            if node.is_leaf and quotas is not None and node.id in quotas:
                extra.append(f"{realized.get(node.id, 0)}/{quotas[node.id]}" if realized is not None else str(quotas[node.id]))
            if node.weight != 1.0:
                extra.append(f"w={node.weight:g}")
            if node.quota is not None:
                extra.append(f"quota={node.quota}")
            texts.append(self._label(node, langs) + (f" [{', '.join(extra)}]" if extra else ""))
        # column widths from the longest label at each depth (~7 px per Latin character at 12 px, 12 px per CJK one)
        col_w = [0.0] * (depth + 1)
        for (_, d, _), text in zip(rows, texts):
            col_w[d] = max(col_w[d], 40 + sum(12 if ord(ch) > 0x2E80 else 7 for ch in text))
        x_at = [float(pad)] * (depth + 2)
        for d in range(1, depth + 1):
            x_at[d + 1] = x_at[d] + col_w[d]

        def xy(i: int) -> tuple[float, float]:
            _, d, y = rows[i]
            return x_at[d], pad + y * row_h + row_h / 2

        width = int(x_at[depth + 1] + pad)
        height = int(pad * 2 + max(1, n_slots) * row_h)
        svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
               'font-family="sans-serif" font-size="12">']
        for a, b in edges:
            (x0, y0), (x1, y1) = xy(a), xy(b)
            xm = x1 - 14
            svg.append(f'<path d="M{x0 + 6:.1f},{y0:.1f} H{xm:.1f} V{y1:.1f} H{x1:.1f}" fill="none" stroke="#bbb"/>')
        for i, ((node, d, _), text) in enumerate(zip(rows, texts)):
            x, y = xy(i)
            color = top_color[node_top[node.id]]
            short = node.is_leaf and quotas is not None and realized is not None and realized.get(node.id, 0) < quotas.get(node.id, 0)
            tooltip = " › ".join(self._label(n, langs) for n in self.path(node.id)) + f" (id: {node.id})"
            svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"><title>{html.escape(tooltip)}</title></circle>')
            weight = "bold" if d == 1 else "normal"
            fill = ' fill="#c0392b"' if short else ""
            svg.append(f'<text x="{x + 8:.1f}" y="{y + 4:.1f}" font-weight="{weight}"{fill}>{html.escape(text)}'
                       f"<title>{html.escape(tooltip)}</title></text>")
        svg.append("</svg>")
        axes_html = ""
        if self.axes:
            parts = []
            for axis in self.axes:
                vals = ", ".join(html.escape(f"{self._label_value(v, langs)}" + (f" (w={v.weight:g})" if v.weight != 1 else ""))
                                 for v in axis.values)
                parts.append(f"<li><b>{html.escape(' / '.join(axis.names.get(l, axis.id) for l in langs))}</b>: {vals}</li>")
            axes_html = "<h2>Axes (crossed with every leaf)</h2><ul>" + "".join(parts) + "</ul>"
        heading = title or f"Taxonomy: {self.name}"
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(heading)}</title><style>body{{font-family:sans-serif;margin:1.5em}}</style></head><body>"
            f"<h1>{html.escape(heading)}</h1><p>{len(self._index)} nodes, {self.n_leaves} leaves, languages "
            f"{html.escape(', '.join(self.languages))}.{' Leaves show generated/quota; short leaves are red.' if realized is not None else ''}</p>"
            + axes_html + "<h2>Tree</h2>" + "".join(svg) + "</body></html>"
        )
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page

    def _label_value(self, value: AxisValue, languages: Sequence[str]) -> str:
        return " / ".join(dict.fromkeys(value.name(lang, self.languages) for lang in languages))

    def _iter_subtree(self, node: TaxonomyNode) -> Iterator[TaxonomyNode]:
        yield node
        for c in node.children:
            yield from self._iter_subtree(c)

    def to_png(self, path: str | os.PathLike[str], *, languages: Sequence[str] | None = None, max_depth: int | None = None,
               dpi: int = 110) -> list[str]:
        """Draw the same tree as `to_html` to a PNG with matplotlib (an optional dependency).

        Chinese, Japanese and Korean labels need a font that has them (Noto Sans CJK, WenQuanYi, Source Han, ...).
        One is picked from the installed fonts when it exists; otherwise labels in those languages are left out (with
        a warning) rather than drawn as empty boxes. `to_html` has no such limit: the browser finds a font.

        Returns:
            `list[str]`: the languages actually drawn.

        Raises:
            `DependencyError`: matplotlib is not installed (`to_html` needs nothing extra).
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from matplotlib import font_manager
        except ImportError as exc:
            raise DependencyError("matplotlib", "viz", "Taxonomy.to_png") from exc
        langs = list(languages or self.languages)
        rows, edges, n_slots = self._layout(max_depth)
        font_props: dict[str, Any] = {}

        def needs_cjk(lang: str) -> bool:
            return any(any(ord(ch) > 0x2E80 for ch in n.name(lang, self.languages)) for n, _, _ in rows)

        cjk = [lang for lang in langs if needs_cjk(lang)]
        if cjk:
            hints = ("Noto Sans CJK", "Noto Serif CJK", "Source Han", "WenQuanYi", "Droid Sans Fallback", "SimHei",
                     "Microsoft YaHei", "PingFang", "AR PL", "Unifont")
            family = next((f.name for f in font_manager.fontManager.ttflist if any(h in f.name for h in hints)), None)
            if family is not None:
                font_props["fontfamily"] = [family, "DejaVu Sans"]
            else:
                import warnings

                warnings.warn(
                    f"No CJK font is installed, so the {cjk} labels are left out of {path}; install one (e.g. Debian's "
                    "fonts-noto-cjk) or use to_html().", stacklevel=2,
                )
                langs = [lang for lang in langs if lang not in cjk] or [self.languages[0]]
        labels = [self._label(node, langs) for node, _, _ in rows]
        depth = max(d for _, d, _ in rows)
        # column widths from the longest label at each depth (~0.075 inch per character at 8 pt; CJK twice that)
        width_of = [0.0] * (depth + 1)
        for (node, d, _), label in zip(rows, labels):
            chars = sum(2 if ord(ch) > 0x2E80 else 1 for ch in label)
            width_of[d] = max(width_of[d], 0.3 + 0.072 * chars)
        x_at = [0.0] * (depth + 2)
        for d in range(1, depth + 1):
            x_at[d + 1] = x_at[d] + width_of[d]
        fig = plt.figure(figsize=(x_at[depth + 1] + 0.4, max(1.5, 0.22 * n_slots + 0.5)))
        ax = fig.add_axes((0, 0, 1, 1))
        cmap = plt.get_cmap("tab10")
        top_index = {}
        for i, top in enumerate(self.nodes):
            for n in self._iter_subtree(top):
                top_index[n.id] = i
        for a, b in edges:
            (_, d0, y0), (_, d1, y1) = rows[a], rows[b]
            xm = x_at[d1] - 0.12
            ax.plot([x_at[d0] + 0.1, xm, xm, x_at[d1]], [-y0, -y0, -y1, -y1], color="#bbbbbb", linewidth=0.8, zorder=1)
        for (node, d, y), label in zip(rows, labels):
            ax.scatter([x_at[d]], [-y], s=14, color=cmap(top_index[node.id] % 10), zorder=2)
            ax.text(x_at[d] + 0.06, -y, label, va="center", fontsize=8, fontweight="bold" if d == 1 else "normal",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5}, zorder=3, **font_props)
        ax.set_xlim(-0.2, x_at[depth + 1] + 0.2)
        ax.set_ylim(-n_slots + 0.4, 0.6)
        ax.set_axis_off()
        fig.savefig(str(path), dpi=dpi)
        plt.close(fig)
        return langs


def _slug(text: str) -> str:
    """An id-safe slug; non-ASCII names (e.g. Chinese) keep a short hash so ids stay unique and stable."""
    ascii_part = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40]
    if ascii_part and ascii_part.replace("_", "").isascii() and len(ascii_part) >= max(1, len(text) // 3):
        return ascii_part
    import hashlib

    return (ascii_part[:20] + "_" if ascii_part else "n") + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


__all__ = ["AxisValue", "PromptUnit", "Taxonomy", "TaxonomyAxis", "TaxonomyNode", "TAXONOMY_DIR"]
