"""Taxonomy: loading and validation errors, round trips, quota arithmetic, axes, other sources, pictures."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from hf_prefsel.errors import ConfigError, DependencyError
from hf_prefsel.hub import Artifact
from hf_prefsel.tap import Taxonomy



# ------------------------------------------------------------------------------------------- default taxonomy


def test_default_taxonomy_is_valid_and_bilingual():
    tax = Taxonomy.load("default")
    assert "default" in Taxonomy.available()
    assert tax.languages == ["en", "zh"]
    assert tax.n_leaves >= 100
    ids = [n.id for n in tax.iter_nodes()]
    assert len(ids) == len(set(ids))
    for node in tax.iter_nodes():
        assert node.names["en"].strip() and node.names["zh"].strip()
        assert any("\u4e00" <= ch <= "\u9fff" for ch in node.names["zh"]), node.names
    # every leaf is three levels down: discipline > category > subject
    assert {len(tax.path(leaf.id)) for leaf in tax.leaves()} == {3}
    tasks = {v.id for v in tax.axis("task_type").values}
    assert {"writing", "coding", "math", "reasoning", "extraction", "roleplay"} <= tasks
    assert {v.id for v in tax.axis("difficulty").values} == {"easy", "medium", "hard"}
    tops = {n.id for n in tax.nodes}
    assert {"natural_sciences", "mathematics", "computing", "humanities", "daily_life"} <= tops


def test_default_covers_published_category_labels(read_shared):
    """Most MT-Bench/Vicuna/BELLE task categories map onto a task type or a discipline of the default taxonomy."""
    rows = read_shared("taxonomy", "category_taxonomies.jsonl")
    tax = Taxonomy.load("default")
    words = {w.lower() for n in tax.iter_nodes() for w in n.names["en"].replace(",", " ").split()}
    words |= {w.lower() for a in tax.axes for v in a.values for w in v.names["en"].split()} | {v.id for a in tax.axes for v in a.values}
    labels = [r["label"].lower() for r in rows if r["taxonomy"] in ("mt_bench", "belle_eval_class")]
    covered = [lab for lab in labels if any(part in words or part.rstrip("s") in words for part in lab.replace("-", " ").split())]
    assert len(covered) / len(labels) >= 0.6, sorted(set(labels) - set(covered))


# ------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["nodes"][0]["children"].append({"id": "physics", "names": {"en": "P", "zh": "物"}}), "used twice"),
        (lambda d: d["nodes"][0]["children"][0]["names"].pop("zh"), "no name in ['zh']"),
        (lambda d: d["nodes"][0].update(weight=0), "positive number"),
        (lambda d: d["nodes"][0].update(weight="heavy"), "positive number"),
        (lambda d: d["nodes"][0].update(quota=-1), "whole number >= 0"),
        (lambda d: d["nodes"][0].update(quota=1, children=[
            {"id": "a", "names": {"en": "A", "zh": "甲"}, "quota": 2}]), "add up to 2, more than its own quota 1"),
        (lambda d: d["nodes"][0].update(childs=[]), "Unknown key(s) ['childs']"),
        (lambda d: d["nodes"][0].update(names="Science"), "must map language codes to names"),
        (lambda d: d["nodes"][0].update(id="bad id!"), "is not valid"),
        (lambda d: d.update(languages=[]), "needs `languages`"),
        (lambda d: d.pop("nodes"), "has no `nodes`"),
        (lambda d: d["axes"][0]["values"].append({"id": "writing", "names": {"en": "w", "zh": "写"}}), "lists the value 'writing' twice"),
        (lambda d: d["axes"][0]["values"][0]["names"].pop("en"), "has no name in ['en']"),
        (lambda d: d["axes"][0].update(id="prompt"), "reserved"),
        (lambda d: d["nodes"][0]["names"].update({"english": "x"}), "not a language code"),
    ],
)
def test_validation_errors_say_what_to_fix(mutate, message, tiny_data):
    data = tiny_data
    mutate(data)
    with pytest.raises(ConfigError) as info:
        Taxonomy.from_mapping(data)
    assert message in str(info.value)


def test_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nlanguages: [en\nnodes: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        Taxonomy.load(bad)
    with pytest.raises(ConfigError, match="not a shipped taxonomy"):
        Taxonomy.load("no-such-taxonomy")
    txt = tmp_path / "tax.txt"
    txt.write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.json"):
        Taxonomy.load(txt)


def test_load_folder_by_artifact_type(tmp_path, tiny_taxonomy):
    """A saved folder is recognised by its artifact type: a taxonomy loads, any other artifact is refused by name."""

    class WordList(Artifact):
        artifact_type = "test_word_list"
        format_version = 1

        def __init__(self, words):
            self.words = list(words)

        def to_dict(self):
            return {"words": self.words}

        def tensors(self):
            return {}

        @classmethod
        def from_dict(cls, data, tensors):
            return cls(data["words"])

    tiny_taxonomy.save_pretrained(tmp_path / "tax")
    assert Taxonomy.load(str(tmp_path / "tax")) == tiny_taxonomy
    WordList(["a", "b"]).save_pretrained(tmp_path / "words")
    with pytest.raises(ConfigError, match="'test_word_list' artifact, which is neither a taxonomy nor a knowledge tree"):
        Taxonomy.load(str(tmp_path / "words"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="Could not load the taxonomy"):
        Taxonomy.load(str(tmp_path / "empty"))


# ------------------------------------------------------------------------------------------- round trips


def test_round_trips(tmp_path, tiny_taxonomy):
    tax = tiny_taxonomy
    assert Taxonomy.from_dict(tax.to_dict()) == tax
    # YAML and JSON files
    yaml_path = tmp_path / "t.yaml"
    tax.to_yaml(yaml_path)
    assert Taxonomy.load(yaml_path) == tax
    json_path = tmp_path / "t.json"
    json_path.write_text(json.dumps(tax.to_dict(), ensure_ascii=False), encoding="utf-8")
    assert Taxonomy.load(json_path) == tax
    # artifact folder, loaded by class, by the generic loader and through Taxonomy.load
    folder = tax.save_pretrained(tmp_path / "artifact")
    assert Taxonomy.from_pretrained(folder) == tax
    assert Artifact.from_pretrained(folder) == tax
    assert Taxonomy.load(str(folder)) == tax
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "日常生活" in card and "taxonomy" in card
    default = Taxonomy.load("default")
    default.save_pretrained(tmp_path / "default")
    assert Taxonomy.from_pretrained(tmp_path / "default") == default


# ------------------------------------------------------------------------------------------- quotas


def test_per_leaf_quotas_multiply_weights_and_honour_explicit_quotas(tiny_data):
    data = tiny_data
    data["nodes"][0]["weight"] = 2  # science x2
    data["nodes"][0]["children"][1]["weight"] = 0.5  # biology x0.5 inside science
    tax = Taxonomy.from_mapping(data)
    assert tax.leaf_quotas(per_leaf=4) == {"physics": 8, "biology": 4, "cooking": 4}
    data["nodes"][1]["quota"] = 1
    tax = Taxonomy.from_mapping(data)
    assert tax.leaf_quotas(per_leaf=4) == {"physics": 8, "biology": 4, "cooking": 1}
    # rounding keeps the total: two science leaves at 3 * 0.5 = 1.5 get 2 and 1, not 2 and 2
    data = tax.to_dict()
    data["nodes"][0].pop("weight")
    data["nodes"][1].pop("quota")
    for child in data["nodes"][0]["children"]:
        child["weight"] = 0.5
    q = Taxonomy.from_mapping(data).leaf_quotas(per_leaf=3)
    assert sorted([q["physics"], q["biology"]]) == [1, 2] and q["cooking"] == 3


def test_total_quotas_split_top_down_between_siblings(tiny_data):
    tax = Taxonomy.from_mapping(tiny_data)
    # two top-level nodes share 10 equally; science splits its 5 between two leaves
    assert tax.leaf_quotas(total=10) == {"physics": 3, "biology": 2, "cooking": 5}
    data = tax.to_dict()
    data["nodes"][1]["weight"] = 3
    assert Taxonomy.from_mapping(data).leaf_quotas(total=8) == {"physics": 1, "biology": 1, "cooking": 6}
    data["nodes"][0]["children"][0]["quota"] = 4  # physics is fixed; the rest shares what is left
    q = Taxonomy.from_mapping(data).leaf_quotas(total=8)
    assert q["physics"] == 4 and q["biology"] == 0 and q["cooking"] == 6
    for total in (0, 1, 7, 101):
        assert sum(Taxonomy.load("default").leaf_quotas(total=total).values()) == total
    with pytest.raises(ConfigError, match="exactly one"):
        tax.leaf_quotas(per_leaf=1, total=3)
    with pytest.raises(ConfigError, match=">= 0"):
        tax.leaf_quotas(per_leaf=-1)


def test_units_spread_axes_over_leaves_and_within_a_leaf():
    tax = Taxonomy.load("default")
    units = tax.units(tax.leaf_quotas(per_leaf=2))
    assert sum(u.quota for u in units) == 2 * tax.n_leaves
    tasks = Counter()
    diff = Counter()
    for u in units:
        tasks[u.axis_values["task_type"]] += u.quota
        diff[u.axis_values["difficulty"]] += u.quota
    # weights respected overall: weight-1 types get ~2x the weight-0.5 ones, difficulties are even
    assert max(diff.values()) - min(diff.values()) <= 1
    full = [tasks[v.id] for v in tax.axis("task_type").values if v.weight == 1]
    half = [tasks[v.id] for v in tax.axis("task_type").values if v.weight == 0.5]
    assert max(full) - min(full) <= 1 and max(half) - min(half) <= 1 and abs(min(full) - 2 * max(half)) <= 2
    # each leaf's two prompts differ in task type and difficulty
    by_leaf: dict[str, list] = {}
    for u in units:
        by_leaf.setdefault(u.leaf_id, []).extend([u.axes] * u.quota)
    for combos in by_leaf.values():
        assert len({dict(c)["task_type"] for c in combos}) == 2 and len({dict(c)["difficulty"] for c in combos}) == 2
    # no axes, or a chosen subset of axes
    assert all(u.axes == () for u in tax.units({"mechanics": 3}, axes=[]))
    assert {a for u in tax.units({"mechanics": 3}, axes=["difficulty"]) for a, _ in u.axes} == {"difficulty"}
    with pytest.raises(ConfigError, match="not a leaf"):
        tax.units({"physics": 2})


def test_spread_leaves_and_subset():
    tax = Taxonomy.load("default")
    first = tax.spread_leaves(len(tax.nodes))
    assert [tax.path(leaf.id)[0].id for leaf in first] == [n.id for n in tax.nodes]  # one per discipline
    sub = tax.subset([leaf.id for leaf in tax.spread_leaves(3)])
    assert sub.n_leaves == 3 and [n.id for n in sub.nodes] == [n.id for n in tax.nodes[:3]]
    assert sub.axes == tax.axes
    with pytest.raises(ConfigError, match="not a leaf"):
        tax.subset(["physics"])


# ------------------------------------------------------------------------------------------- other sources


def test_from_knowledge_tree(tmp_path):
    from hf_prefsel.tags.tree import KnowledgeTree

    names = ["binary search", "quicksort", "prime numbers", "gcd", "fractions", "algorithms", "number theory",
             "arithmetic", "math", "root"]
    parents = [5, 5, 6, 6, 7, 9, 8, 8, 9, -1]
    tree = KnowledgeTree(names, parents)
    tax = Taxonomy.from_knowledge_tree(tree, max_depth=2, name="kt")
    assert [n.names["en"] for n in tax.nodes] == ["math", "algorithms"]  # most concepts first
    assert {leaf.names["en"] for leaf in tax.leaves()} == {"number theory", "arithmetic", "binary search", "quicksort"}
    assert tax.node(tax.nodes[0].id).weight == 3.0  # three concepts under "math"
    flat = Taxonomy.from_knowledge_tree(tree.to_dict(), max_depth=1, weight_by="uniform")
    assert flat.n_leaves == 2 and all(n.weight == 1 for n in flat.iter_nodes())
    assert Taxonomy.from_knowledge_tree(tree, max_depth=None).n_leaves == 5
    # a saved knowledge tree folder loads as a taxonomy directly (what `--taxonomy PATH` does)
    tree.save_pretrained(tmp_path / "tree")
    assert Taxonomy.load(str(tmp_path / "tree")) == Taxonomy.from_knowledge_tree(tree, name="tree")


def test_from_dataset_missing_column_is_typed():
    from datasets import Dataset

    from hf_prefsel.errors import MissingColumnError

    with pytest.raises(MissingColumnError, match="'subcategory' is missing"):
        Taxonomy.from_dataset(Dataset.from_dict({"category": ["a"]}), ["category", "subcategory"])


def test_from_tagged_dataset_real_alignbench_labels(read_shared):
    rows = [r for r in read_shared("multilingual", "zh_instructions_labelled.jsonl") if r["id"].startswith("alignbench")]
    flat = [{"category": r["category"], "subcategory": (r.get("meta") or {}).get("subcategory")} for r in rows]
    tax = Taxonomy.from_dataset(flat, ["category", "subcategory"], language="zh", name="alignbench")
    assert len(tax.nodes) == 8 and tax.languages == ["zh"]
    assert "专业能力" in {n.names["zh"] for n in tax.nodes}
    assert sum(1 for _ in tax.leaves()) >= 30
    ids = [n.id for n in tax.iter_nodes()]
    assert len(ids) == len(set(ids))
    # list-valued tags (TACOS style) give a flat taxonomy of the most frequent tags
    tagged = [{"tags": ["python", "code generation"]}, {"tags": ["python"]}, {"tags": ["cooking"]}]
    tags = Taxonomy.from_dataset(tagged, ["tags"], max_leaves=2)
    assert [n.names["en"] for n in tags.nodes] == ["python", "code generation"]


# ------------------------------------------------------------------------------------------- pictures


def test_html_picture(tmp_path, tiny_taxonomy):
    page = tiny_taxonomy.to_html(tmp_path / "t.html", quotas={"physics": 2, "biology": 2, "cooking": 2},
                                 realized={"physics": 2, "biology": 1})
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<script" not in page
    assert "Physics / 物理" in page and "1/2" in page and "Task type / 任务类型" in page
    assert (tmp_path / "t.html").read_text(encoding="utf-8") == page
    big = Taxonomy.load("default").to_html()
    assert big.count("<circle") == sum(1 for _ in Taxonomy.load("default").iter_nodes())


def test_png_needs_matplotlib(tmp_path, tiny_taxonomy):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(DependencyError, match="matplotlib"):
            tiny_taxonomy.to_png(tmp_path / "t.png")
        return
    tiny_taxonomy.to_png(tmp_path / "t.png", languages=["en"])
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
