"""Adapters: real multi-aspect rows, hand-made UltraFeedback/HelpSteer rows in the exact Hub schema, user columns."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from datasets import Dataset

from hf_prefsel.errors import ConfigError, MissingColumnError
from hf_prefsel.pd import (
    AspectSplitConfig,
    detect_format,
    from_helpsteer,
    from_multi_response,
    from_pairwise,
    from_rated_responses,
    from_ultrafeedback,
    load_multiaspect_jsonl,
    read_jsonl,
    to_pairs,
)


def _rating_gap(pair: dict, aspect: str, lower_is_better: bool = False) -> float:
    gap = pair["chosen_ratings"][aspect] - pair["rejected_ratings"][aspect]
    return -gap if lower_is_better else gap


def test_sf_one_per_prompt_real_rows(sf_path):
    ps = load_multiaspect_jsonl(sf_path)
    pairs, report = ps.pairs, ps.bad_rows
    assert report.rows_in == 978
    # Every prompt has >= 2 responses, so each prompt is one unit: a pair or a counted bad row.
    assert len(pairs) + report.counts["tie"] + report.counts["missing_rating"] == 978
    assert report.pairs_out == len(pairs)
    assert set(pairs["aspect"]) == {"informativeness", "naturalness"}  # "overall" is never a label
    assert len(set(pairs["prompt_id"])) == len(pairs)  # prompt-disjoint D_k
    assert len(set(pairs["pair_id"])) == len(pairs)
    for pair in pairs:
        assert _rating_gap(pair, pair["aspect"]) > 0  # chosen is strictly better on its own aspect
        assert pair["chosen_ratings"]["overall"] is not None  # the holistic rating is kept for conflict checks
    # the chosen response is the best-rated response of its prompt on that aspect
    rows = {r["id"]: r for r in read_jsonl(sf_path)}
    for pair in pairs.select(range(50)):
        best = max(r["ratings"][pair["aspect"]] for r in rows[pair["prompt_id"]]["responses"])
        assert pair["chosen_ratings"][pair["aspect"]] == best


def test_split_is_seeded_and_order_independent(sf_rows):
    rows = sf_rows[:200]
    first = from_multi_response(rows, config=AspectSplitConfig(seed=3)).pairs
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    second = from_multi_response(shuffled, config=AspectSplitConfig(seed=3)).pairs
    assert sorted(zip(first["pair_id"], first["aspect"])) == sorted(zip(second["pair_id"], second["aspect"]))
    other = from_multi_response(rows, config=AspectSplitConfig(seed=4)).pairs
    assert sorted(first["pair_id"]) != sorted(other["pair_id"])


def test_all_pairs_round_robin_without_fallback(topical_path):
    config = AspectSplitConfig(pair_mode="all_pairs", fallback=False)
    ps = load_multiaspect_jsonl(topical_path, config)
    units = 60 * 15  # 6 responses per prompt -> 15 unordered pairs
    assert len(ps.pairs) + ps.bad_rows.counts["tie"] + ps.bad_rows.counts["missing_rating"] == units
    aspects = {"coherence", "engagingness", "groundedness", "naturalness", "understandability"}
    assert set(ps.pairs["aspect"]) <= aspects
    # round robin: each aspect was assigned exactly units / 5 units; kept pairs cannot exceed that
    assert max(Counter(ps.pairs["aspect"]).values()) <= units // 5
    with_fallback = load_multiaspect_jsonl(topical_path, AspectSplitConfig(pair_mode="all_pairs"))
    assert len(with_fallback.pairs) >= len(ps.pairs)
    assert len(with_fallback.pairs) + with_fallback.bad_rows.total == units


def test_qa_feedback_error_counts_and_human_labels(qa_path):
    rows = read_jsonl(qa_path)
    ps = load_multiaspect_jsonl(qa_path)
    labels = [p for r in rows for p in r["meta"]["pairwise_preferences"]]
    n_ties = sum(p["winner"] == "tie" for p in labels)
    # Only response 0 carries error counts, so no prompt has a rating-based pair: all 500 counted, none dropped silently.
    assert ps.bad_rows.counts["missing_rating"] == 500
    assert ps.bad_rows.counts["tie"] == n_ties
    assert len(ps.pairs) == len(labels) - n_ties
    assert set(ps.pairs["aspect"]) == {"preference"}
    first = rows[0]
    winners = {(p["i"], p["j"]): p["winner"] for p in first["meta"]["pairwise_preferences"]}
    texts = [r["text"] for r in first["responses"]]
    for pair in ps.pairs.filter(lambda p: p["prompt_id"] == first["id"]):
        c, r = texts.index(pair["chosen"]), texts.index(pair["rejected"])
        key = (min(c, r), max(c, r))
        assert winners[key] == ("i" if c < r else "j")


def test_error_counts_are_lower_is_better():
    rows = [
        {
            "id": "q1",
            "prompt": "Who wrote Hamlet?",
            "responses": [
                {"text": "Shakespeare.", "ratings": {"n_errors_Irrelevant": 0, "n_errors_Redundant": 1}},
                {"text": "Shakespeare wrote it, Shakespeare.", "ratings": {"n_errors_Irrelevant": 2, "n_errors_Redundant": 3}},
            ],
        }
    ]
    pairs = from_multi_response(rows).pairs
    assert len(pairs) == 1 and pairs[0]["chosen"] == "Shakespeare."


# --- UltraFeedback: hand-made rows in the exact openbmb/UltraFeedback Hub schema ---------------------------------


def _uf_completion(response, ratings, overall, model="m"):
    def ann(rating, typed=False):
        entry = {"Rating": rating, "Rationale": "because"}
        if typed:
            entry.update({"Rationale For Rating": "r", "Type": ["1"]})
        return entry

    return {
        "annotations": {
            "helpfulness": ann(ratings[0], typed=True),
            "honesty": ann(ratings[1]),
            "instruction_following": ann(ratings[2]),
            "truthfulness": ann(ratings[3], typed=True),
        },
        "critique": "critique text",
        "custom_system_prompt": "You are helpful.",
        "fine-grained_score": 4.0,
        "model": model,
        "overall_score": overall,
        "principle": "helpfulness",
        "response": response,
    }


UF_ROWS = [
    {
        "source": "evol_instruct",
        "instruction": "Name a prime number greater than 10.",
        "models": ["a", "b", "c", "d"],
        "completions": [
            _uf_completion("11 is prime.", ["5", "5", "5", "5"], 9.0, "a"),
            _uf_completion("12.", ["1", "N/A", "2", "1"], 2.0, "b"),
            _uf_completion("13, since it has no divisors but 1 and itself.", ["4", "4", "5", "5"], 8.5, "c"),
            _uf_completion("", ["3", "3", "3", "3"], 5.0, "d"),
        ],
        "correct_answers": ["11"],
        "incorrect_answers": ["12"],
    },
    {
        "source": "flan_v2_niv2",
        "instruction": "Translate 'chat' to English.",
        "models": ["a"],
        "completions": [_uf_completion("cat", ["5", "5", "5", "5"], 10.0)],
        "correct_answers": [],
        "incorrect_answers": [],
    },
    {
        "source": "sharegpt",
        "instruction": "Say hi.",
        "models": ["a", "b"],
        "completions": [
            _uf_completion("hi", ["3", "3", "3", "3"], 6.0),
            _uf_completion("hello", ["3", "3", "3", "3"], 6.0),
        ],
        "correct_answers": [],
        "incorrect_answers": [],
    },
]


def test_ultrafeedback_hub_schema():
    ds = Dataset.from_list(UF_ROWS)
    assert detect_format(ds) == "ultrafeedback"
    ps = from_ultrafeedback(ds, AspectSplitConfig(pair_mode="all_pairs"))
    report = ps.bad_rows
    assert report.rows_in == 3
    assert report.counts["empty_response"] == 1  # the 4th completion of row 0
    assert report.counts["non_numeric_rating"] == 1  # honesty "N/A"
    assert report.counts["fewer_than_two_responses"] == 1  # row 1 has one completion
    assert report.counts["tie"] == 1  # row 2: every aspect ties
    pairs = ps.pairs
    assert len(pairs) == 3  # row 0: three usable completions -> three pairs
    assert set(pairs["aspect"]) <= {"helpfulness", "honesty", "instruction_following", "truthfulness"}
    for pair in pairs:
        assert _rating_gap(pair, pair["aspect"]) > 0
        assert pair["chosen_ratings"]["overall"] is not None
    by_text = {p["chosen"] + "|" + p["rejected"]: p for p in pairs}
    honesty_missing = [p for p in pairs if "12." in (p["chosen"], p["rejected"])]
    assert all(p["aspect"] != "honesty" or None not in (p["chosen_ratings"]["honesty"], p["rejected_ratings"]["honesty"])
               for p in honesty_missing)
    assert len(by_text) == 3
    assert to_pairs(ds, AspectSplitConfig(pair_mode="all_pairs")).pairs["pair_id"] == pairs["pair_id"]


# --- HelpSteer / HelpSteer2: one row per response, five 0-4 attributes ----------------------------------------------


def _hs(prompt, response, h, c, co, cx, v):
    return {"prompt": prompt, "response": response, "helpfulness": h, "correctness": c, "coherence": co,
            "complexity": cx, "verbosity": v}


HS_ROWS = [
    _hs("What is 2+2?", "4", 4, 4, 4, 0, 0),
    _hs("What is 2+2?", "It is 4 because two and two make four.", 4, 4, 4, 1, 2),
    _hs("What is 2+2?", "5", 0, 0, 3, 0, 0),
    _hs("Name a color.", "Blue.", 3, 4, 4, 0, 0),  # alone: fewer than two responses
    _hs("Say yes.", "Yes.", 2, 2, 2, 2, 2),
    _hs("Say yes.", "Yes!", 2, 2, 2, 2, 2),  # full tie
]


def test_helpsteer_hub_schema():
    ds = Dataset.from_list(HS_ROWS)
    assert detect_format(ds) == "helpsteer"
    ps = from_helpsteer(ds, AspectSplitConfig(pair_mode="all_pairs"))
    assert ps.bad_rows.rows_in == 6
    assert ps.bad_rows.counts["fewer_than_two_responses"] == 1
    assert ps.bad_rows.counts["tie"] == 1
    assert len(ps.pairs) == 3  # the three responses to "What is 2+2?"
    assert set(ps.pairs["prompt"]) == {"What is 2+2?"}
    for pair in ps.pairs:
        assert _rating_gap(pair, pair["aspect"]) > 0
    one = from_helpsteer(ds)  # one pair per prompt: the best vs a worse one
    assert len(one.pairs) == 1


def test_rated_responses_user_columns_and_missing_column():
    rows = [{"q": "hi", "a": "hello", "polite": 3, "short": 1}, {"q": "hi", "a": "yo", "polite": 1, "short": 4}]
    ps = from_rated_responses(rows, prompt_column="q", response_column="a", rating_columns=["polite", "short"])
    assert len(ps.pairs) == 1
    with pytest.raises(MissingColumnError):
        from_rated_responses(Dataset.from_list(rows), prompt_column="q", response_column="a", rating_columns=["nope"])
    with pytest.raises(ConfigError):
        from_rated_responses(rows, prompt_column="q", response_column="a", rating_columns=[])


def test_pairwise_user_columns_and_bad_rows():
    rows = [
        {"question": "q1", "good": "a", "bad": "b", "facet": "honesty", "sg": {"honesty": 5, "helpfulness": 2},
         "sb": {"honesty": 1, "helpfulness": 4}},
        {"question": "q2", "good": "same", "bad": "same", "facet": "honesty", "sg": {}, "sb": {}},
        {"question": "q3", "good": "", "bad": "x", "facet": "honesty", "sg": {}, "sb": {}},
        {"question": "q4", "good": "c", "bad": "d", "facet": None, "sg": {}, "sb": {}},
        {"question": "q5", "good": "e", "bad": "f", "facet": "helpfulness", "sg": {"honesty": "N/A"}, "sb": {}},
    ]
    ps = from_pairwise(
        rows, prompt_column="question", chosen_column="good", rejected_column="bad",
        aspect_column="facet", chosen_ratings_column="sg", rejected_ratings_column="sb",
    )
    assert len(ps.pairs) == 2
    assert dict(ps.bad_rows.counts) == {
        "identical_responses": 1, "empty_response": 1, "missing_aspect": 1, "non_numeric_rating": 1,
    }
    first = ps.pairs[0]
    assert first["aspect"] == "honesty" and first["chosen_ratings"] == {"helpfulness": 2.0, "honesty": 5.0}
    with pytest.raises(ConfigError):
        from_pairwise(rows, aspect_column=None)
    with pytest.raises(MissingColumnError):
        from_pairwise(Dataset.from_list(rows[:4]), prompt_column="question")


def test_report_summary_lists_reasons(sf_path):
    ps = load_multiaspect_jsonl(sf_path)
    text = ps.bad_rows.summary()
    assert "tie" in text and "rows in: 978" in text
    assert len(ps.bad_rows.ids["tie"]) == ps.bad_rows.counts["tie"]
    assert ps.bad_rows.to_dict()["skipped"]["tie"] == ps.bad_rows.counts["tie"]
    with pytest.raises(ConfigError, match="Unknown bad-row reason 'typo'; use one of"):
        ps.bad_rows.add("typo", "x")


def test_unrated_responses_are_counted_not_dropped():
    rows = [{"id": "u1", "prompt": "p", "responses": [{"text": "a"}, {"text": "b"}, {"text": "c"}]}]
    ps = from_multi_response(rows, config=AspectSplitConfig(pair_mode="all_pairs"))
    assert len(ps.pairs) == 0 and ps.bad_rows.counts == {"missing_rating": 3}
    assert ps.bad_rows.ids["missing_rating"] == ["u1#0-1", "u1#0-2", "u1#1-2"]


def test_to_pairs_detects_layouts():
    multi = Dataset.from_list([{"prompt": "p", "responses": [{"text": "a", "ratings": {"x": 1.0}},
                                                             {"text": "b", "ratings": {"x": 2.0}}]}])
    assert detect_format(multi) == "multi_response"
    assert to_pairs(multi).pairs[0]["chosen"] == "b"
    pairwise = Dataset.from_list([{"prompt": "p", "chosen": "a", "rejected": "b"}])
    assert detect_format(pairwise) == "pairwise"
    assert to_pairs(pairwise).pairs[0]["aspect"] == "preference"
    with pytest.raises(Exception, match="adapter"):
        detect_format(Dataset.from_list([{"text": "t"}]))
