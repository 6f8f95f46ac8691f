"""`TagNormalizerConfig.released_code()` reproduces the released TACOS normalization exactly, on real tags.

The released code is `hexixiang/OpenCS`, file `src/open_tag_cluster/tag_cluster.py` (commit ff863938), class
`TagCluster`; `execute()` (l.44-56) reads the tagged rows, counts tags (l.52), filters by frequency (l.54) and by
rules (l.56) before the semantic clustering this preset does not run. `opencs_reference` below is our own small
re-implementation that follows those methods step by step (line numbers cited), kept independent of the library
code on purpose: it shares no helper with `hf_prefsel`, only NLTK's `PorterStemmer`, which the released code
calls itself. Both run on tag lists built deterministically from real rows of ../shared/data, and must agree on the
canonical keys, the raw -> canonical map, the counts and the kept rows.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections import Counter

import pytest

from hf_prefsel.tacos.normalize import TagNormalizer, TagNormalizerConfig
from shared_data import shared_path


def opencs_reference(rows: list[list[str]], alpha: int) -> dict:
    """The released code's steps up to the rule step, on rows of tag strings (row position = OpenCS's `index`).

    OpenCS rows are `(tags, index)` with tags `{"tag", "explanation"}` dicts (`get_good_case_tag_data`, l.126-141);
    explanations are carried along but never read by these steps, so a tag here is its `"tag"` string.
    """
    instruction_id = [(list(tags), index) for index, tags in enumerate(rows)]

    # count_tag_frequency, l.143-150: +1 per listing of a tag, so a tag listed twice in a row counts 2.
    tag_count: dict[str, object] = {}
    for tags, _ in instruction_id:
        for tag in tags:
            tag_count[tag] = tag_count[tag] + 1 if tag in tag_count else 1
    raw_counts = dict(tag_count)

    # filter_tag_by_frequency, l.161-172: delete tags counted < alpha (l.162-164, alpha as given: no scaling);
    # drop rows with no surviving tag (l.165-168), then the removed tags from the remaining rows (l.169-172).
    for tag in list(tag_count):
        if tag_count[tag] < alpha:
            del tag_count[tag]
    instruction_id = [(tags, index) for tags, index in instruction_id if any(t in tag_count for t in tags)]
    instruction_id = [([t for t in tags if t in tag_count], index) for tags, index in instruction_id]

    # filter_tag_by_rule, l.180-197: for every surviving tag, lower() (l.186), re.sub(r'\W+', ' ') (l.188; `_` is
    # a word character and edge spaces stay), then NLTK's PorterStemmer() in its default mode on the whole string
    # (l.181, l.190). tag_mapping (l.191) is the raw -> key map; every key is kept, even a blank one.
    from nltk.stem import PorterStemmer

    ps = PorterStemmer()
    tag_mapping: dict[str, str] = {}
    for tag in list(tag_count):
        new_tag = ps.stem(re.sub(r"\W+", " ", tag.lower()))
        tag_mapping[tag] = new_tag
        # l.192 re-keys tag_count by the new key with [raw, count]; when several raws share a key the later one
        # overwrites the earlier, so tag_count's values are not the group counts. Nothing downstream reads them:
        # embed_tags (l.205-207) and the clustering read the rows below, so those define the vocabulary.
        tag_count[new_tag] = [tag, tag_count.pop(tag)]
    # l.194-197: every tag of every kept row replaced by its key (duplicates within a row stay).
    instruction_id = [([tag_mapping.get(t, t) for t in tags], index) for tags, index in instruction_id]

    return {
        "raw_counts": raw_counts,
        "raw_to_key": tag_mapping,
        "keys": set(tag_mapping.values()),
        # One entry per key occurrence in the kept rows: the list embed_tags embeds (l.207).
        "key_counts": dict(Counter(key for tags, _ in instruction_id for key in tags)),
        # Per kept row, its keys once each in first-seen order (cluster_text_embeddings dedups labels per row).
        "rows": [(index, list(dict.fromkeys(tags))) for tags, index in instruction_id],
    }


def ours(rows: list[list[str]], alpha: int) -> dict:
    import datasets

    normalizer = TagNormalizer(TagNormalizerConfig.released_code(alpha=alpha))
    ds = datasets.Dataset.from_dict({"index": list(range(len(rows))), "tags": rows})
    out = normalizer.fit_transform(ds)
    vocab = normalizer.vocabulary
    return {
        "raw_counts": vocab.raw_counts,
        "raw_to_key": {raw: c for raw, c in vocab.raw_to_canonical.items() if c is not None},
        "keys": set(vocab.canonical_counts),
        "key_counts": vocab.canonical_counts,
        "rows": list(zip(out["index"], out["canonical_tags"])),
        "n_raw": vocab.n_raw,
        "n_kept_rows": vocab.n_samples_with_canonical_tags,
    }


def assert_same(rows: list[list[str]], alpha: int) -> dict:
    expected, got = opencs_reference(rows, alpha), ours(rows, alpha)
    assert got["raw_counts"] == expected["raw_counts"]  # every raw tag seen, counted by listings
    assert got["raw_to_key"] == expected["raw_to_key"]  # the raw -> canonical map (dropped raws: None in ours)
    assert got["n_raw"] == len(expected["raw_counts"])
    assert got["keys"] == expected["keys"]  # canonical tags are the stemmed keys
    assert got["key_counts"] == expected["key_counts"]
    assert got["rows"] == expected["rows"]  # the same kept rows, in order, with the same tags
    assert got["n_kept_rows"] == len(expected["rows"])
    return expected


# ---------------------------------------------------------------------------------------------------- real tags


@pytest.fixture(scope="module")
def instruction_rows() -> list[dict]:
    """Every row of ../shared/data/instructions (24k English instructions from 13 sources), in file order."""
    folder = os.path.dirname(shared_path("instructions", "flask_eval_skills.jsonl"))
    rows: list[dict] = []
    for path in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
        with open(path, encoding="utf-8") as fh:
            rows.extend(json.loads(line) for line in fh)
    return rows


def whole_labels(rows: list[dict]) -> list[list[str]]:
    """Each row's own labels as whole tags: its category, FLASK skills/domains, the subsets that selected it."""
    out = []
    for row in rows:
        meta = row.get("meta") or {}
        tags = [row["category"]] if row.get("category") else []
        for key in ("skills", "domains", "selected_by"):
            tags += [t for t in meta.get(key) or [] if isinstance(t, str)]
        out.append(tags)
    return out


def words(rows: list[dict], n: int = 12) -> list[list[str]]:
    """The first `n` whitespace-separated words of the instruction, punctuation and case kept: noisy tags."""
    return [(row.get("instruction") or "").split()[:n] for row in rows]


def bigrams(rows: list[dict]) -> list[list[str]]:
    """Consecutive word pairs of the instruction's first 12 words: multi-word tags whose last word gets stemmed."""
    return [[" ".join(w[i : i + 2]) for i in range(len(w) - 1)] for w in words(rows)]


@pytest.mark.parametrize("alpha", [20, 1])
def test_released_code_equals_opencs_on_whole_label_tags(instruction_rows, alpha):
    expected = assert_same(whole_labels(instruction_rows), alpha)
    assert len(expected["rows"]) > 20_000 and len(expected["keys"]) > 100
    # Labels such as "code_generation" keep their underscore and are stemmed as one string.
    assert expected["raw_to_key"]["code_generation"] == "code_gener"


@pytest.mark.parametrize("alpha", [20, 3])
def test_released_code_equals_opencs_on_instruction_words(instruction_rows, alpha):
    expected = assert_same(words(instruction_rows), alpha)
    keys = expected["raw_to_key"]
    # The cases where the preset differs from our defaults all occur in this real data:
    assert any(raw.lower() != raw and key in keys.values() for raw, key in keys.items())  # spellings merged
    assert any(not key.strip() for key in keys.values())  # a blank key ("-", "+", ...) is kept
    assert any(key.endswith(" ") for key in keys.values())  # trailing punctuation leaves an edge space
    assert any(len(set(row)) < len(row) for row in words(instruction_rows))  # occurrences != samples


def test_released_code_equals_opencs_on_instruction_bigrams(instruction_rows):
    expected = assert_same(bigrams(instruction_rows), 2)
    # Only the end of a multi-word tag is stemmed: "Writing poems" -> "writing poem", the "-ing" word untouched.
    plain = [(raw.lower(), key) for raw, key in expected["raw_to_key"].items() if re.fullmatch(r"[a-z]+ [a-z]+", raw.lower())]
    assert any(low.split()[0].endswith("ing") and key.split()[0] == low.split()[0] and key != low for low, key in plain)


def test_released_code_equals_opencs_on_edge_cases():
    # Hand-written corner cases of the released code: blank and symbol-only tags, `_`, one-letter tags, tags that
    # differ only by edge punctuation, NLTK irregular forms, a raw tag equal to another tag's key ("agre" is the
    # stem of "agreed" and stems further itself), and a tag listed twice in one row.
    rows = [
        ["", "&", "+", "__", "s", "dance.", "Dance", "dance"],
        ["news", "News!", "dying", "agreed", "agre", "agre"],
        ["code_generation", "Code Generation", "code-generation"],
        [],
        ["&", "dance.", "news"],
    ]
    for alpha in (1, 2):
        assert_same(rows, alpha)


def test_our_defaults_differ_from_the_released_code_on_real_words(instruction_rows):
    # The switches matter: on the same real words (alpha 20 as given), our defaults count rows, not listings, and
    # give other canonical tags.
    tags = words(instruction_rows)
    defaults = TagNormalizerConfig(reference_size=None, semantic_aggregation=False, association_aggregation=False)
    ours_default = TagNormalizer(defaults).fit(tags).vocabulary
    released = TagNormalizer(TagNormalizerConfig.released_code()).fit(tags).vocabulary
    assert ours_default.raw_counts["the"] < released.raw_counts["the"]
    assert set(ours_default.canonical_counts) != set(released.canonical_counts)
