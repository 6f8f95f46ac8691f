"""The token savings of issue 8 on the real embedded model (two llama.cpp servers): counted, never timed."""

from __future__ import annotations

import pytest

from hf_prefsel.llm import LLMConfig
from hf_prefsel.tacos import OpenTagger

pytestmark = pytest.mark.slow


def _batch(lima_rows, start: int, n: int) -> dict:
    return {"instruction": [" ".join(r["instruction"].split())[:400] for r in lima_rows[start : start + n]]}


def _tagger(servers, cache_path: str, config: dict | None = None, **kw) -> OpenTagger:
    return OpenTagger(servers.config(cache_path=cache_path, **(config or {})), input_column=None, **kw)


def test_stopping_at_the_answer_end_saves_tokens_and_changes_nothing(local_servers, lima_rows, cache_path):
    # Greedy decoding is bitwise repeatable only from the same server state: llama.cpp reuses the longest prefix
    # shared with the previous prompt and evaluates the rest in one batch, and a different batch split can flip a
    # near-tied token (CI saw 'atomic theory' vs 'atomic physics'). So one server, one request at a time, and the
    # same other prompt sent (uncached) before each compared request.
    # free generation (`repair`): under a grammar (`always`, the default on llama.cpp's server) the reply ends at its
    # closing bracket with or without the stop, which is not what is measured here
    one_server = {"endpoints": local_servers.urls[:1], "max_concurrency": 1, "constrain": "repair"}
    reset = _tagger(local_servers, None, {**one_server, "cache": False})
    stopped = _tagger(local_servers, cache_path, one_server)
    running = _tagger(local_servers, cache_path, {**one_server, "end_at_answer": False})
    other, tagged = _batch(lima_rows, 30, 1), {"stopped": [], "running": []}
    for i in range(4):
        row = _batch(lima_rows, i, 1)
        for name, tagger in (("stopped", stopped), ("running", running)):
            reset(other)
            tagged[name] += tagger(row)["tags"]
    per_row_stopped = stopped.usage.completion_tokens / 4
    per_row_running = running.usage.completion_tokens / 4
    assert per_row_stopped < 20 and per_row_running >= 40  # the cap is 48 and nothing ends the free reply early
    assert 2 * per_row_stopped < per_row_running
    # the first line is the same reply, the tolerant parse reads it out of the longer text
    assert tagged["stopped"] == tagged["running"]
    assert stopped.usage.repairs == 0


def test_server_reports_prefix_cache_hits(local_servers, lima_rows, cache_path):
    tagger = _tagger(local_servers, cache_path)
    # a batching server (llama.cpp's) has several slots per replica, each cold until it serves this prompt family
    tagger(_batch(lima_rows, 20, 8))
    tagger.usage.reset()
    before = local_servers.prefix_stats()
    out = tagger(_batch(lima_rows, 4, 6))
    after = local_servers.prefix_stats()
    requests = after["requests"] - before["requests"]
    hits = after["prefix_hits"] + after["full_hits"] - before["prefix_hits"] - before["full_hits"]
    assert requests == tagger.usage.calls >= 6
    # each server's first request may follow another prompt family; every later one reuses the few-shot prefix
    assert hits >= requests - len(local_servers.urls)
    reused = after["reused_tokens"] - before["reused_tokens"]
    evaluated = after["evaluated_tokens"] - before["evaluated_tokens"]
    assert reused / max(1, hits) > 120  # the shared prefix is ~180 tokens
    assert evaluated < 0.5 * tagger.usage.prompt_tokens  # less than half of the prompt tokens are computed
    # a row the model cannot tag even under the grammar is a recorded failure, not a crash
    assert sum(map(bool, out["tags"])) >= 5 and all(t or e for t, e in zip(out["tags"], out["tags_error"]))


def test_free_generation_and_grammar_are_both_valid(local_servers, lima_rows, cache_path):
    batch = _batch(lima_rows, 10, 4)
    free = _tagger(local_servers, cache_path)
    constrained = _tagger(local_servers, cache_path, {"constrain": "always"})
    free_out, constrained_out = free(batch), constrained(batch)
    assert all(free_out["tags"]) and all(constrained_out["tags"])
    assert all(1 <= len(t) <= 6 for t in free_out["tags"] + constrained_out["tags"])


def test_several_rows_per_call_on_the_real_model(local_servers, lima_rows, cache_path):
    tagger = _tagger(local_servers, cache_path, rows_per_call=4)
    out = tagger(_batch(lima_rows, 14, 4))
    assert len(out["tags"]) == 4 and all(out["tags"]), out["tags_error"]
    # one combined request, plus one request per row the combined reply missed (and their repairs)
    assert tagger.usage.calls == 1 + tagger.usage.rows_fallback + tagger.usage.repairs


def test_embedded_defaults_are_the_cheap_ones(local_servers):
    tagger = OpenTagger(local_servers.config())
    assert tagger.explanations is False and tagger.rows_per_call == 1
    config: LLMConfig = tagger.llm
    assert config.end_at_answer and config.prefill and config.prefix_reuse and config.constrain == "auto"
