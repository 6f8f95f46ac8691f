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

The parts and their parsing live in `taxonomy_nodes`, the quota rules in `quotas`, the other sources in
`taxonomy_sources`, and the pictures in `hf_prefsel.viz`; `Taxonomy` is the one entry point to all of them.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .. import viz
from ..errors import ArtifactError, ConfigError
from ..hub import Artifact
from .quotas import cross_axes, leaf_quotas
from .taxonomy_nodes import (
    TOP_KEYS,
    AxisValue,
    PromptUnit,
    TaxonomyAxis,
    TaxonomyNode,
    check_keys,
    check_tree,
    parse_axis,
    parse_names,
    parse_node,
)
from .taxonomy_sources import dataset_nodes, knowledge_tree_nodes

TAXONOMY_DIR = Path(__file__).parent / "taxonomies"


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
        self._index, self._parent = check_tree(self.name, self.languages, self.nodes, self.axes)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str | None = None) -> "Taxonomy":
        """Build from the YAML/JSON structure described in the module docstring."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"A taxonomy file must hold a mapping with `name`, `languages` and `nodes`, got {type(data).__name__}.")
        check_keys(data, TOP_KEYS, "")
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
            [parse_node(n, "") for n in nodes],
            name=str(data["name"]),
            languages=languages,
            axes=[parse_axis(a, i) for i, a in enumerate(axes)],
            description=parse_names(desc, "", "description") if isinstance(desc, Mapping) and desc else
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
            from ..tags.tree import KnowledgeTree  # imported so the artifact registry knows 'knowledge_tree'

            try:
                artifact = Artifact.from_pretrained(text, **hub_kwargs)  # the class is picked by artifact_type
            except ArtifactError as exc:
                raise ConfigError(
                    f"Could not load the taxonomy {text!r}: {exc} Shipped taxonomies: {cls.available()}."
                ) from exc
            if isinstance(artifact, Taxonomy):
                return artifact if isinstance(artifact, cls) else cls.from_mapping(artifact.to_dict())
            if isinstance(artifact, KnowledgeTree):  # its top two levels become the taxonomy
                return cls.from_knowledge_tree(artifact, name=Path(text).name or "knowledge-tree")
            raise ConfigError(
                f"{text!r} holds a {artifact.artifact_type!r} artifact, which is neither a taxonomy nor a knowledge "
                f"tree. Point to a saved Taxonomy or KnowledgeTree, or use a shipped taxonomy: {cls.available()}."
            )
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
        return leaf_quotas(self.nodes, per_leaf=per_leaf, total=total)

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
        return cross_axes(quotas, chosen)

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
        nodes = knowledge_tree_nodes(tree, language=language, max_depth=max_depth, weight_by=weight_by)
        return cls(nodes, name=name, languages=[language], source="KnowledgeTree")

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
        nodes = dataset_nodes(data, columns, language=language, min_count=min_count, max_leaves=max_leaves,
                              weight_by=weight_by)
        return cls(nodes, name=name, languages=[language], source=f"dataset columns {list(columns)}")

    # ------------------------------------------------------------------ pictures
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
        return viz.taxonomy_html(self, path, languages=languages, quotas=quotas, realized=realized,
                                 max_depth=max_depth, title=title)

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
        return viz.taxonomy_png(self, path, languages=languages, max_depth=max_depth, dpi=dpi)


__all__ = ["AxisValue", "PromptUnit", "Taxonomy", "TaxonomyAxis", "TaxonomyNode", "TAXONOMY_DIR"]
