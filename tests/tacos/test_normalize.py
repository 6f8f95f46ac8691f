"""TagNormalizer, step by step, on hand-written realistic tags whose expected merges were written by hand."""

from __future__ import annotations

import itertools
import pickle
import random

import pytest

from hf_prefsel.errors import ConfigError, DataError, MissingColumnError
from hf_prefsel.tacos.normalize import (
    TagNormalizer,
    TagNormalizerConfig,
    clean_tag,
    fpgrowth,
    pair_counts,
    rule_key,
    scaled_threshold,
)

ONLY_RULES = dict(frequency_filter=False, semantic_aggregation=False, association_aggregation=False)


def _groups(vocab, raws):
    """Partition of `raws` by canonical tag, as a set of frozensets, for comparing with hand-written merges."""
    by: dict[str | None, set[str]] = {}
    for raw in raws:
        by.setdefault(vocab.canonical(raw), set()).add(raw)
    return {frozenset(v) for v in by.values()}


# ---------------------------------------------------------------------------------------------------- rule step

# Spellings an LLM tagger really produces for Alpaca-style intents, grouped BY HAND into what the InsTag rule step
# (lowercase, non-word runs -> space, Porter stem of every word) must merge. Each inner list is one expected group.
RULE_GROUPS = [
    ["Math", "math", "MATH"],
    ["Mathematical Calculation", "mathematical calculations", "Mathematical-Calculation"],
    ["Code Generation", "code_generation", "code generation", "Code generation"],
    ["Python programming", "python_programming", "Python Programming"],
    ["Information Retrieval", "information-retrieval", "information retrieval"],
    ["Summarization", "summarize", "Summarizing"],
    ["Grammar Checking", "grammar check", "Grammar checks"],
    ["Recipe Requests", "recipe request"],
    ["Translation", "Translate", "translation"],
    # Every word is stemmed, not only the last one (the released code's quirk would keep these apart).
    ["Writing Poems", "write poem", "writing poem"],
    # Word order is not a rule: these stay apart here (semantic aggregation's job).
    ["Generating code"],
    ["Role Play", "role-play"],
    ["roleplay"],
    ["Mathematics"],
    ["Java programming"],
]


def test_rule_aggregation_merges_exactly_the_hand_written_groups():
    rows = [[t] for group in RULE_GROUPS for t in group]
    normalizer = TagNormalizer(TagNormalizerConfig(**ONLY_RULES)).fit(rows)
    vocab = normalizer.vocabulary
    raws = [t for g in RULE_GROUPS for t in g]
    assert _groups(vocab, raws) == {frozenset(g) for g in RULE_GROUPS}
    step = {s.name: s for s in vocab.steps}["rule_aggregation"]
    assert (step.unique_before, step.unique_after) == (len(raws), len(RULE_GROUPS))
    # Canonical names are a real (lowercased) spelling, never a stem.
    assert vocab.canonical("Mathematical-Calculation") in {"mathematical calculation", "mathematical calculations", "mathematical-calculation"}
    assert vocab.canonical("Writing Poems") in {"writing poems", "write poem", "writing poem"}
    assert "mathemat calcul" not in vocab.canonical_counts


def test_representative_is_the_most_frequent_raw_spelling():
    rows = [["Recipe Requests"]] * 2 + [["recipe request"]] * 5 + [["RECIPE REQUEST"]]
    vocab = TagNormalizer(TagNormalizerConfig(**ONLY_RULES)).fit(rows).vocabulary
    assert vocab.canonical_counts == {"recipe request": 8}
    assert vocab.members("recipe request") == ["recipe request", "Recipe Requests", "RECIPE REQUEST"]


def test_rule_helpers():
    assert clean_tag("Code_Generation / Python!") == "code generation python"
    assert clean_tag("  C++  Programming ") == "c programming"
    assert rule_key("Writing Poems") == rule_key("write poem") == "write poem"
    assert rule_key("Writing Poems", stemmer=None) == "writing poems"
    assert rule_key("!!!") == ""
    with pytest.raises(ConfigError, match="Unknown stemmer"):
        TagNormalizerConfig(stemmer="klingon")


def test_tags_without_word_characters_are_dropped():
    vocab = TagNormalizer(TagNormalizerConfig(**ONLY_RULES)).fit([["math", "???"], ["  "]]).vocabulary
    assert vocab.canonical("???") is None and vocab.canonical("  ") is None
    assert vocab.n_samples_with_canonical_tags == 1


# ---------------------------------------------------------------------------------------------------- frequency


def test_alpha_scales_linearly_with_corpus_size_and_never_above_the_configured_value():
    cfg = TagNormalizerConfig()
    assert cfg.effective_alpha(52_002) == 20  # Alpaca: as published
    assert cfg.effective_alpha(26_001) == 10
    assert cfg.effective_alpha(5_000) == 2  # 20 * 5000 / 52002 = 1.92
    assert cfg.effective_alpha(1_000) == 1  # floor: keep everything on tiny corpora
    assert cfg.effective_alpha(1_000_000) == 20  # not raised for larger corpora
    assert TagNormalizerConfig(min_alpha=3).effective_alpha(1_000) == 3
    assert TagNormalizerConfig(reference_size=None).effective_alpha(100) == 20
    assert cfg.effective_min_support(52_002) == 40
    assert cfg.effective_min_support(13_000) == 10
    assert cfg.effective_min_support(1_000) == 5  # floor: 99% of 2 co-occurrences is no evidence
    assert scaled_threshold(20, 5_000) == 2


def test_frequency_filter_counts_samples_not_repeats_and_drops_rare_tags():
    rows = (
        [["math", "math", "reasoning"]] * 3  # a tag repeated inside a row counts once per row
        + [["reasoning"]] * 1
        + [["poetry"]] * 2
        + [["math"]] * 1
    )
    cfg = TagNormalizerConfig(alpha=4, reference_size=None, **{k: v for k, v in ONLY_RULES.items() if k != "frequency_filter"})
    normalizer = TagNormalizer(cfg).fit(rows)
    vocab = normalizer.vocabulary
    assert vocab.raw_counts == {"math": 4, "reasoning": 4, "poetry": 2}
    assert vocab.canonical("poetry") is None
    assert set(vocab.canonical_counts) == {"math", "reasoning"}
    step = vocab.steps[0]
    assert (step.name, step.unique_before, step.unique_after, step.params["alpha"]) == ("frequency_filter", 3, 2, 4)
    assert normalizer.transform(rows[-3:]) == [[], [], ["math"]]
    assert vocab.n_samples_with_canonical_tags == len(rows) - 2


def test_frequency_after_rules_keeps_rare_spellings_of_frequent_tags():
    rows = [["math"]] * 3 + [["Math"]]
    common = dict(alpha=3, reference_size=None, semantic_aggregation=False, association_aggregation=False)
    raw_first = TagNormalizer(TagNormalizerConfig(**common)).fit(rows).vocabulary
    rules_first = TagNormalizer(TagNormalizerConfig(frequency_after_rules=True, **common)).fit(rows).vocabulary
    assert raw_first.canonical("Math") is None
    assert rules_first.canonical("Math") == "math"
    assert [s.name for s in rules_first.steps][:2] == ["rule_aggregation", "frequency_filter"]


# ---------------------------------------------------------------------------------------------------- semantic


def test_semantic_aggregation_on_hand_labelled_pairs(embedder):
    # Written by hand: synonyms that must end up together, related-but-different intents that must not.
    rows = (
        [["Python programming"]] * 5
        + [["programming in Python"]] * 2
        + [["Java programming"]] * 3
        + [["Text summarization"]] * 4
        + [["summarizing text"]]
        + [["Text translation"]] * 2
        + [["Poem writing"]] * 2
        + [["poetry writing"]] * 3
        + [["Grammar correction"]] * 2
        + [["Spelling correction"]] * 2
        + [["Travel advice"], ["Financial advice"]]
    )
    cfg = TagNormalizerConfig(frequency_filter=False, association_aggregation=False)
    vocab = TagNormalizer(cfg, embedder=embedder).fit(rows).vocabulary
    c = vocab.canonical
    assert c("programming in Python") == c("Python programming") == "python programming"
    assert c("summarizing text") == c("Text summarization") == "text summarization"
    assert c("Poem writing") == c("poetry writing") == "poetry writing"  # the more frequent spelling names it
    distinct = ["Python programming", "Java programming", "Text summarization", "Text translation",
                "Grammar correction", "Spelling correction", "Travel advice", "Financial advice", "Poem writing"]
    assert len({c(t) for t in distinct}) == len(distinct)
    step = {s.name: s for s in vocab.steps}["semantic_aggregation"]
    assert (step.unique_before, step.unique_after) == (12, 9)


# ---------------------------------------------------------------------------------------------------- association


def _assoc_config(**kw):
    return TagNormalizerConfig(
        frequency_filter=False, rule_aggregation=True, semantic_aggregation=False, reference_size=None, **kw
    )


def test_association_merges_a_tag_that_never_comes_alone_and_chains_recursively():
    rows = (
        [["pandas dataframe", "data analysis", "seaborn plot"]] * 41  # seaborn -> pandas -> data analysis
        + [["pandas dataframe", "data analysis"]] * 9
        + [["data analysis"]] * 70
        + [["sql query", "data analysis"]] * 44  # 44/45 = 97.8% < 99%: kept apart
        + [["sql query"]]
        + [["regex", "string manipulation"]] * 30  # 100% but support 30 < 40: kept apart
        + [["string manipulation"]] * 20
    )
    normalizer = TagNormalizer(_assoc_config()).fit(rows)
    vocab = normalizer.vocabulary
    c = vocab.canonical
    assert c("pandas dataframe") == "data analysis"
    assert c("seaborn plot") == "data analysis"
    assert c("sql query") == "sql query"
    assert c("regex") == "regex"
    step = vocab.steps[-1]
    assert step.name == "association_aggregation"
    assert (step.unique_before, step.unique_after) == (6, 4)
    assert step.params["merged_tags"] >= 2
    # The merged tag's count is the number of samples holding any member.
    assert vocab.canonical_counts["data analysis"] == 41 + 9 + 70 + 44
    assert normalizer.normalize(["Seaborn Plot", "pandas dataframe"]) == ["data analysis"]


def test_association_merges_two_always_paired_tags_into_one():
    rows = [["step by step reasoning", "chain of thought"]] * 50 + [["chain of thought"]] * 10
    vocab = TagNormalizer(_assoc_config()).fit(rows).vocabulary
    assert vocab.canonical_counts == {"chain of thought": 60}


def test_association_respects_min_confidence():
    rows = [["a tag", "b tag"]] * 50 + [["a tag"], ["b tag"]]  # confidence 50/51 = 0.98 both ways
    assert TagNormalizer(_assoc_config()).fit(rows).vocabulary.n_canonical == 2
    assert TagNormalizer(_assoc_config(min_confidence=0.95)).fit(rows).vocabulary.n_canonical == 1


def test_deprecated_fpgrowth_still_equals_brute_force_counting():
    rng = random.Random(0)
    transactions = [rng.sample(range(8), rng.randint(1, 5)) for _ in range(300)]
    with pytest.warns(DeprecationWarning, match="pair_counts"):
        got = fpgrowth(transactions, min_support=12, max_len=3)
    expected = {}
    for size in (1, 2, 3):
        for itemset in itertools.combinations(range(8), size):
            support = sum(set(itemset) <= set(t) for t in transactions)
            if support >= 12:
                expected[itemset] = support
    assert got == expected
    assert any(len(k) == 3 for k in got)
    with pytest.warns(DeprecationWarning):
        assert fpgrowth([[1, 2], [1, 2, 3], [1]], min_support=2) == {(1,): 3, (2,): 2, (1, 2): 2}
        assert all(len(k) <= 2 for k in fpgrowth(transactions, 12, max_len=2))
        unlimited = fpgrowth(transactions, 12)
    assert {k: v for k, v in unlimited.items() if len(k) <= 3} == got


def _brute_force_pairs(samples, items, min_support):
    """Pair supports counted the slow obvious way: for every pair, the samples whose tag set holds both."""
    sets: dict[int, set[int]] = {}
    for s, i in zip(samples.tolist(), items.tolist()):
        sets.setdefault(s, set()).add(i)
    expected = {}
    for a, b in itertools.combinations(sorted(set(items.tolist())), 2):
        n = sum({a, b} <= t for t in sets.values())
        if n >= min_support:
            expected[(a, b)] = n
    return expected


@pytest.mark.parametrize("seed,n_items,min_support", [(1, 15, 10), (2, 40, 1), (3, 6, 30)])
def test_sparse_pair_counts_equal_brute_force_counting(seed, n_items, min_support):
    # pair_counts (X.T @ X on the samples x tags 0/1 matrix) replaced a hand-written FP-growth; both must give the
    # support of every pair, which we count here directly. Repeated (sample, tag) entries count once.
    import numpy as np

    rng = np.random.default_rng(seed)
    samples = np.repeat(np.arange(400), rng.integers(1, 6, size=400))
    items = rng.integers(0, n_items, size=len(samples))
    a, b, count = pair_counts(samples, items, n_items, min_support)
    got = dict(zip(zip(a.tolist(), b.tolist()), count.tolist()))
    expected = _brute_force_pairs(samples, items, min_support)
    assert got == expected
    assert expected  # the case is not vacuous
    assert list(zip(a.tolist(), b.tolist())) == sorted(got)


def test_sparse_pair_counts_on_real_tag_sets(flask_rows):
    # Real multi-label rows (FLASK skills + domains): pair supports equal the brute-force count.
    import numpy as np

    names: dict[str, int] = {}
    samples, items = [], []
    for s, row in enumerate(flask_rows):
        for tag in row["meta"]["skills"] + row["meta"]["domains"]:
            samples.append(s)
            items.append(names.setdefault(tag, len(names)))
    samples, items = np.array(samples), np.array(items)
    a, b, count = pair_counts(samples, items, len(names), min_support=5)
    assert dict(zip(zip(a.tolist(), b.tolist()), count.tolist())) == _brute_force_pairs(samples, items, 5)
    assert len(a) > 50


# ---------------------------------------------------------------------------------------------------- transform


def test_transform_as_datasets_map_callable_with_failed_rows(embedder):
    import datasets

    ds = datasets.Dataset.from_dict(
        {
            "instruction": ["a", "b", "c", "d"],
            "tags": [["Math", "math problem"], [], ["Code generation", "code_generation", "Math"], ["Unseen Tag"]],
            "tags_error": [None, "model returned no JSON", None, None],
        }
    )
    fit_rows = [["Math", "math problem"], ["Code generation", "code_generation", "Math"]]
    normalizer = TagNormalizer(TagNormalizerConfig(semantic_aggregation=False), embedder=embedder).fit(fit_rows)
    out = ds.map(normalizer, batched=True, batch_size=2)
    assert out["canonical_tags"] == [["math", "math problem"], [], ["code generation", "math"], []]
    # Unseen spellings are matched through their rule key.
    assert normalizer.normalize(["MATH-PROBLEMS", "math"]) == ["math problem", "math"]
    keep = TagNormalizer(TagNormalizerConfig(semantic_aggregation=False, unknown_tags="keep")).fit(fit_rows)
    assert keep.normalize(["Unseen Tag"]) == ["unseen tag"]


def test_normalizer_pickles_to_its_config_and_vocabulary_so_datasets_caches_the_map():
    from datasets.fingerprint import Hasher

    rows = [["Math", "coding"], ["math"]]
    a = TagNormalizer(TagNormalizerConfig(**ONLY_RULES)).fit(rows)
    b = TagNormalizer(TagNormalizerConfig(**ONLY_RULES)).fit(rows)
    assert Hasher.hash(a) == Hasher.hash(b)
    clone = pickle.loads(pickle.dumps(a))
    assert clone.normalize(["MATH", "Coding"]) == ["math", "coding"]
    c = TagNormalizer(TagNormalizerConfig(**ONLY_RULES)).fit(rows + [["poetry"]])
    assert Hasher.hash(a) != Hasher.hash(c)


def test_errors_tell_the_user_what_to_do():
    import datasets

    with pytest.raises(ConfigError, match="not fitted"):
        TagNormalizer().normalize(["x"])
    with pytest.raises(MissingColumnError, match="tags"):
        TagNormalizer().fit(datasets.Dataset.from_dict({"labels": [["x"]]}))
    with pytest.raises(DataError, match="list of tags"):
        TagNormalizer().fit(["math", "coding"])
    with pytest.raises(DataError, match="lists of strings"):
        TagNormalizer().fit([[{"tag": "math", "explanation": "..."}]])
    with pytest.raises(ConfigError, match="min_confidence"):
        TagNormalizerConfig(min_confidence=1.5)


def test_a_corpus_where_every_tagging_failed_gives_an_empty_vocabulary():
    import datasets

    ds = datasets.Dataset.from_dict({"tags": [[], []], "tags_error": ["timeout", "bad JSON"]})
    normalizer = TagNormalizer()
    out = normalizer.fit_transform(ds)
    assert out["canonical_tags"] == [[], []]
    assert normalizer.vocabulary.n_canonical == 0 and normalizer.vocabulary.n_samples_with_raw_tags == 0
    assert "0 raw tags -> 0 canonical" in normalizer.vocabulary.report()


def test_released_code_preset_runs_only_frequency_and_rules():
    # alpha as given (no scaling): 1 here so the three one-row tags survive.
    cfg = TagNormalizerConfig.released_code(alpha=1)
    vocab = TagNormalizer(cfg).fit([["Math"], ["math"], ["mathematics"]]).vocabulary
    ran = [s.name for s in vocab.steps if s.enabled]
    assert ran == ["frequency_filter", "rule_aggregation"]
    assert vocab.canonical_counts == {"math": 2, "mathemat": 1}  # named by the NLTK stem of the whole tag


def test_released_code_preset_uses_alpha_as_given():
    assert TagNormalizerConfig.released_code().effective_alpha(100) == 20
    vocab = TagNormalizer(TagNormalizerConfig.released_code()).fit([["Math"]] * 19 + [["code"]] * 20).vocabulary
    assert vocab.canonical_counts == {"code": 20}


# ---------------------------------------------------------------------------------------------------- switches


def test_new_switches_default_to_the_previous_behaviour():
    cfg = TagNormalizerConfig()
    assert (cfg.counts, cfg.cleaning, cfg.stemmer, cfg.stem_scope) == ("samples", "words", "porter", "word")
    assert (cfg.keep_empty_keys, cfg.canonical_names, cfg.drop_untagged_rows) == (False, "most_frequent", False)
    # A vocabulary saved before these switches existed loads with the old behaviour.
    old = {k: v for k, v in cfg.to_dict().items() if k not in {"counts", "cleaning", "stem_scope"}}
    assert TagNormalizerConfig.from_dict(old) == cfg
    for name, bad in [("counts", "tokens"), ("cleaning", "none"), ("stem_scope", "last"), ("canonical_names", "x")]:
        with pytest.raises(ConfigError, match=name):
            TagNormalizerConfig(**{name: bad})


def test_counts_occurrences_counts_every_listing():
    rows = [["math", "math", "poetry"], ["math"], ["poetry"]]
    common = dict(alpha=3, reference_size=None, semantic_aggregation=False, association_aggregation=False)
    by_samples = TagNormalizer(TagNormalizerConfig(**common)).fit(rows).vocabulary
    by_occurrences = TagNormalizer(TagNormalizerConfig(counts="occurrences", **common)).fit(rows).vocabulary
    assert by_samples.raw_counts == {"math": 2, "poetry": 2} and by_samples.n_canonical == 0
    assert by_occurrences.raw_counts == {"math": 3, "poetry": 2}
    assert by_occurrences.canonical_counts == {"math": 3}


def test_cleaning_and_stemming_modes():
    assert clean_tag("Code_Generation / Dance.", cleaning="non_word_runs") == "code_generation dance "
    assert clean_tag("Code_Generation / Dance.") == "code generation dance"
    # NLTK's default mode keeps irregular forms that the original Porter algorithm (Snowball "porter") stems.
    assert rule_key("news", stemmer="nltk_porter") == "news" and rule_key("news") == "new"
    assert rule_key("dying", stemmer="nltk_porter") == "die" and rule_key("dying") == "dy"
    # Stemming the whole tag as one string changes only its end; a trailing space protects even that.
    assert rule_key("Writing Poems", stemmer="nltk_porter", stem_scope="tag") == "writing poem"
    assert rule_key("Writing Poems", stemmer="nltk_porter") == "write poem"
    assert rule_key("Writing Poems.", stemmer="nltk_porter", stem_scope="tag", cleaning="non_word_runs") == "writing poems "
    with pytest.raises(ConfigError, match="nltk_porter"):
        TagNormalizerConfig(stemmer="nltk")


def test_keep_empty_keys_and_key_names():
    rows = [["&", "Math Problems"], ["+"], ["math problem"]]
    only_rules = dict(ONLY_RULES, cleaning="non_word_runs", stemmer="nltk_porter", stem_scope="tag")
    dropped = TagNormalizer(TagNormalizerConfig(**only_rules)).fit(rows).vocabulary
    assert dropped.canonical("&") is None and dropped.canonical("+") is None
    kept = TagNormalizer(TagNormalizerConfig(keep_empty_keys=True, canonical_names="key", **only_rules)).fit(rows)
    vocab = kept.vocabulary
    assert vocab.canonical("&") == vocab.canonical("+") == " "  # both clean to one space, one canonical tag
    assert vocab.canonical("Math Problems") == vocab.canonical("math problem") == "math problem"
    assert vocab.canonical_counts == {" ": 2, "math problem": 2}
    assert kept.normalize(["%%"]) == [" "]  # unseen spelling, same key


def test_drop_untagged_rows():
    import datasets

    rows = [["math"], [], ["poetry"], None, ["math"]]
    keep = TagNormalizer(TagNormalizerConfig(**ONLY_RULES)).fit(rows)
    drop = TagNormalizer(TagNormalizerConfig(drop_untagged_rows=True, **ONLY_RULES)).fit(rows)
    assert keep.transform(rows) == [["math"], [], ["poetry"], [], ["math"]]
    assert drop.transform(rows) == [["math"], ["poetry"], ["math"]]
    ds = datasets.Dataset.from_dict({"index": [0, 1, 2, 3, 4], "tags": rows})
    out = drop.transform(ds)
    assert out["index"] == [0, 2, 4] and out["canonical_tags"] == [["math"], ["poetry"], ["math"]]
    assert len(ds.map(drop, batched=True)) == 5  # as a map callable it only adds the column
