"""The `Dataset.map` face: fingerprint caching, num_proc, bad input, failure columns."""

from __future__ import annotations

import json
import pickle

import datasets
import pytest

from hf_prefsel.errors import DataError, MissingColumnError
from hf_prefsel.llm import LLMConfig
from hf_prefsel.tacos import OpenTagger


@pytest.fixture
def jsonl_dataset(tmp_path, lima_rows):
    """A real on-disk dataset (so `datasets` keeps cache files and fingerprints matter)."""
    path = tmp_path / "rows.jsonl"
    with open(path, "w") as fh:
        for row in lima_rows[:12]:
            fh.write(json.dumps({"instruction": row["instruction"], "input": row["input"], "output": row["output"]}) + "\n")
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))


def tagger_for(server, cache_path, **kw) -> OpenTagger:
    return OpenTagger(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path, backoff=0.05), **kw)


def test_map_adds_columns(fault_server, cache_path, jsonl_dataset):
    server = fault_server()
    tagger = tagger_for(server, cache_path)
    out = jsonl_dataset.map(tagger, batched=True, batch_size=5)
    assert out.column_names[-3:] == ["tags", "tag_explanations", "tags_error"]
    first_word = jsonl_dataset[0]["instruction"].split()[0].lower().strip(".,!?")
    assert out[0]["tags"] == [f"topic {first_word}"]
    assert all(e == "" for e in out["tags_error"])
    assert tagger.usage.calls == 12


def test_pickles_to_config_and_datasets_cache_hits(fault_server, cache_path, jsonl_dataset):
    server = fault_server()
    tagger = tagger_for(server, cache_path)
    state = pickle.loads(pickle.dumps(tagger)).__dict__
    assert set(state) == {"llm", "on_bad_row", "progress", "instruction_column", "input_column",
                          "messages_column", "explanations", "max_query_chars", "prompt", "rows_per_call", "max_tokens"}
    first = jsonl_dataset.map(tagger, batched=True, batch_size=4)
    assert server.generation_requests == 12
    # same config in a fresh object: same fingerprint, datasets serves its cache, no call at all
    again = jsonl_dataset.map(tagger_for(server, cache_path), batched=True, batch_size=4)
    assert again._fingerprint == first._fingerprint
    assert again.cache_files == first.cache_files
    assert server.generation_requests == 12
    # a different config is a different fingerprint
    other = tagger_for(server, cache_path, max_query_chars=100)
    assert datasets.fingerprint.Hasher.hash(other) != datasets.fingerprint.Hasher.hash(tagger)


def test_num_proc_two(fault_server, cache_path, jsonl_dataset):
    server = fault_server()
    out = jsonl_dataset.map(tagger_for(server, cache_path), batched=True, batch_size=3, num_proc=2)
    assert len(out) == 12 and all(out["tags"])
    assert server.generation_requests == 12


def test_missing_column_names_it(fault_server, cache_path, jsonl_dataset):
    tagger = tagger_for(fault_server(), cache_path, instruction_column="prompt")
    with pytest.raises(MissingColumnError, match="'prompt'.*Available columns: instruction, input, output"):
        jsonl_dataset.map(tagger, batched=True)


def test_bad_values_name_row_and_column(fault_server, cache_path):
    ds = datasets.Dataset.from_dict({"instruction": ["Fine question here", "", "Another one"]})
    server = fault_server()
    with pytest.raises(DataError, match=r"row 1: column 'instruction' is empty"):
        ds.map(tagger_for(server, cache_path), batched=True, with_indices=True)
    ds2 = datasets.Dataset.from_dict({"instruction": ["Fine question here", None, "Another one"]})
    out = ds2.map(tagger_for(server, cache_path, on_bad_row="record"), batched=True)
    assert out["tags_error"][1].startswith("DataError") and "is None" in out["tags_error"][1]
    assert out["tags"][1] == [] and out["tags"][0] and out["tags"][2]
    ds3 = datasets.Dataset.from_dict({"instruction": [["a", "list"]]})
    with pytest.raises(DataError, match="holds list"):
        ds3.map(tagger_for(server, cache_path), batched=True)


def test_failed_rows_are_recorded_not_dropped(fault_server, cache_path):
    server = fault_server(responder=lambda body: "no tags, sorry" if "Alpha" in body["prompt"] else None)
    ds = datasets.Dataset.from_dict({"instruction": ["Alpha question", "Beta question"]})
    tagger = tagger_for(server, cache_path)
    out = ds.map(tagger, batched=True)
    assert len(out) == 2
    assert out["tags"][0] == [] and "StructuredOutputError" in out["tags_error"][0]
    assert out["tags"][1] == ["topic beta"] and out["tags_error"][1] == ""
    assert tagger.usage.failures == 1 and tagger.usage.repairs == 2
    assert server.generation_requests == 4


def test_messages_column(fault_server, cache_path):
    ds = datasets.Dataset.from_dict({"messages": [[
        {"role": "user", "content": "Hello there, plan a trip"},
        {"role": "assistant", "content": "Sure"},
        {"role": "user", "content": "to Rome"},
    ]]})
    server = fault_server()
    out = ds.map(tagger_for(server, cache_path, messages_column="messages"), batched=True)
    assert out["tags"][0] == ["topic hello"]
    assert "Hello there, plan a trip to Rome" in server.requests[0]["prompt"]


def test_error_column_survives_a_clean_first_batch(fault_server, cache_path):
    """datasets fixes column types from the first batch: a failure in a later batch must still be writable."""
    server = fault_server(responder=lambda body: "no tags" if "Zeta" in body["prompt"] else None)
    ds = datasets.Dataset.from_dict({"instruction": ["Alpha one", "Beta two", "Gamma three", "Zeta four"]})
    tagger = OpenTagger(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path, repair_attempts=0))
    out = ds.map(tagger, batched=True, batch_size=2)
    assert out["tags_error"][:3] == ["", "", ""] and "StructuredOutputError" in out["tags_error"][3]


def _count_shared_clients(_: object) -> int:
    from hf_prefsel.llm import shared_clients

    return len(shared_clients())


def test_shared_clients_are_this_process_clients():
    import multiprocessing

    from hf_prefsel.llm import get_client, shared_clients

    base = dict(endpoints=["http://127.0.0.1:9"], cache=False)
    tagging, judging = get_client(LLMConfig(**base)), get_client(LLMConfig(**base, max_tokens=7))
    assert get_client(LLMConfig(**base)) is tagging and judging is not tagging
    assert {id(tagging), id(judging)} <= {id(c) for c in shared_clients()}
    # a forked worker inherits the parent's registry but not its clients: their counters stay in the parent
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.map(_count_shared_clients, [None]) == [0]
