"""ConceptTagger: extraction, checker rounds, failures, against a fake endpoint."""

from __future__ import annotations

import json

import datasets
import pytest

from hf_prefsel.llm import LLMConfig
from hf_prefsel.tags.concepts import ConceptTagger


def _responder(body):
    prompt = body["prompt"]
    last = prompt.rsplit("Input: ", 1)[-1]
    if last.startswith("Request:"):  # checker: make "math" specific, keep the rest
        proposed = json.loads(last.split("Proposed: ", 1)[1].split("\n")[0])
        return json.dumps(["irrational numbers" if c == "math" else c for c in proposed])
    if "sqrt" in last:
        return '["math", "Proof by contradiction", "math"]'
    if "broken" in last:
        return "no idea"
    return '["binary search"]'


def _tagger(server, cache_path, **kw):
    return ConceptTagger(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path), **kw)


def test_extracts_and_cleans(fault_server, cache_path):
    server = fault_server(responder=_responder)
    ds = datasets.Dataset.from_dict({"instruction": ["Find x in a sorted list", "Show sqrt 2 is irrational"]})
    out = ds.map(_tagger(server, cache_path), batched=True)
    assert out["concepts"] == [["binary search"], ["math", "proof by contradiction"]]
    assert out["concept_rounds"] == [0, 0]


def test_checker_rounds_revise_until_stable(fault_server, cache_path):
    server = fault_server(responder=_responder)
    ds = datasets.Dataset.from_dict({"instruction": ["Find x in a sorted list", "Show sqrt 2 is irrational", "broken row"]})
    tagger = _tagger(server, cache_path, check_rounds=3)
    out = ds.map(tagger, batched=True)
    assert out["concepts"][1] == ["irrational numbers", "proof by contradiction"]
    assert out["concept_rounds"] == [0, 1, 0]
    assert out["concepts"][2] == [] and "StructuredOutputError" in out["concepts_error"][2]
    # round 1 checks the two good rows; round 2 re-checks only the changed one, accepts it, and the loop ends
    checker_calls = sum(1 for r in server.requests if r["prompt"].rsplit("Input: ", 1)[-1].startswith("Request:"))
    assert checker_calls == 3


def test_llm_namer_names_parents_and_falls_back(fault_server, cache_path):
    from hf_prefsel.tags import KnowledgeTree, KnowledgeTreeConfig, LLMNamer

    def responder(body):
        members = json.loads(body["prompt"].rsplit("Input: ", 1)[-1].split("\n")[0])
        if "unnameable" in members:
            return "???"
        return json.dumps({"name": f"area of {members[0]}"})

    server = fault_server(responder=responder)
    namer = LLMNamer(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path, repair_attempts=0))
    assert namer([["binary search", "hash tables"], ["unnameable", "x"]]) == ["area of binary search", "unnameable"]
    assert namer.failures == 1
    concepts = ["binary search", "merge sort", "hash tables", "photosynthesis", "plant hormones", "chlorophyll",
                "index funds", "bond funds", "stock market"]
    tree = KnowledgeTree.build(concepts, KnowledgeTreeConfig(ratio=0.34, max_root_children=3), namer=namer)
    internal = [tree.names[i] for i in range(tree.n_nodes) if len(tree.children(i))]
    assert any(name.startswith("area of ") for name in internal)


def test_reads_chat_user_turns_like_the_intent_tagger(fault_server, cache_path):
    from hf_prefsel.tacos import OpenTagger

    server = fault_server(responder=_responder)
    chats = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "Show sqrt 2 is irrational"},
              {"role": "assistant", "content": "Assume p/q..."}]]
    ds = datasets.Dataset.from_dict({"messages": chats})
    tagger = _tagger(server, cache_path, messages_column="messages")
    out = ds.map(tagger, batched=True)
    assert out["concepts"] == [["math", "proof by contradiction"]]
    # one rule for the text every tagger reads: the same row gives the same query to both taggers
    row = {"messages": chats[0]}
    assert tagger.query_text(row) == OpenTagger(tagger.llm, messages_column="messages").query_text(row)
    assert "be brief" not in tagger.query_text(row) and "Assume" not in tagger.query_text(row)


def test_rows_per_call_asks_several_rows_at_once(fault_server, cache_path):
    def several(body):
        last = body["prompt"].rsplit("Input: ", 1)[-1]
        if last.lstrip().startswith("1."):  # a numbered list of rows: one JSON object keyed by row number
            return json.dumps({"1": ["binary search"], "2": ["proof by contradiction"]})
        return _responder(body)

    server = fault_server(responder=several)
    ds = datasets.Dataset.from_dict({"instruction": ["Find x in a sorted list", "Show sqrt 2 is irrational"]})
    out = ds.map(_tagger(server, cache_path, rows_per_call=2), batched=True)
    assert out["concepts"][0] == ["binary search"] and out["concepts"][1]
    assert out["concepts"][1] == ["proof by contradiction"] and server.generation_requests == 1  # one call, two rows


def test_taggers_take_a_config_object_or_its_fields():
    """One calling style for model stages: (llm, config); the older keyword spelling builds the same object."""
    from hf_prefsel.errors import ConfigError
    from hf_prefsel.tacos import OpenTagger, OpenTaggerConfig
    from hf_prefsel.tags import ConceptTaggerConfig

    llm = LLMConfig(endpoints=["http://127.0.0.1:9"])
    by_config = OpenTagger(llm, OpenTaggerConfig(instruction_column="q", rows_per_call=2))
    by_keywords = OpenTagger(llm, instruction_column="q", rows_per_call=2)
    assert vars(by_config) == vars(by_keywords)
    mixed = ConceptTagger(llm, ConceptTaggerConfig(check_rounds=1), instruction_column="q", on_bad_row="record")
    assert (mixed.check_rounds, mixed.instruction_column, mixed.on_bad_row) == (1, "q", "record")
    with pytest.raises(ConfigError):
        ConceptTaggerConfig(check_rounds=-1)
    with pytest.raises(ConfigError):
        OpenTagger(llm, ConceptTaggerConfig())
