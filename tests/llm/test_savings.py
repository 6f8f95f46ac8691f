"""The token savings of issue 8, checked on fake endpoints: what is sent, how replies are split, where requests go."""

from __future__ import annotations

import json
import os

import datasets
import pytest

from hf_prefsel.llm import FewShotPrompt, LLMClient, LLMConfig, LocalServers, render_transcript
from hf_prefsel.llm.prompt import ROWS_NOTE, answer_prefix, answer_suffix, answers_single_line, prefix_key
from hf_prefsel.llm.structured import rows_schema, schema_of
from hf_prefsel.tacos import OpenTagger
from hf_prefsel.tacos.tagger import PLAIN_TAGGING_PROMPT, TAGGING_PROMPT, PlainTags, is_embedded_model, tagging_prompt


def tags_for(query: str) -> list[str]:
    """A deterministic tag list for one query: what the fake model 'thinks'."""
    words = [w.lower().strip(".,!?") for w in query.split()] or ["empty"]
    return [f"topic {words[0]}", f"length {len(words)}", f"last {words[-1]}"]


def last_block(prompt: str) -> str:
    return prompt.rsplit("Input: ", 1)[-1].rsplit("\nOutput:", 1)[0]


def test_answer_opening_is_prefilled(fault_server, cache_path):
    server = fault_server(responder=rows_responder())
    client = LLMClient(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path))
    [result] = client.run_structured([PLAIN_TAGGING_PROMPT.messages("alpha beta")], PlainTags)
    assert server.requests[0]["prompt"].endswith('\nOutput: ["')  # the shared opening of every demo answer
    assert result.ok and result.value == tags_for("alpha beta") and result.raw.startswith('["topic alpha"')
    off = LLMClient(LLMConfig(endpoints=[server.url], route="completion", cache=False, prefill=False))
    off.run_structured([PLAIN_TAGGING_PROMPT.messages("alpha beta")], PlainTags)
    assert server.requests[-1]["prompt"].endswith("\nOutput:")
    assert answer_prefix(TAGGING_PROMPT.messages("x")) == '[{"tag":"'
    assert answer_prefix(FewShotPrompt("s", (("a", '["x"]'), ("b", '{"y": 1}'))).messages("q")) == ""
    assert answer_prefix(FewShotPrompt("s", (("a", '["x", "y"]'),)).messages("q")) == ""  # one demo shows no shared opening


def rows_responder(drop: str | None = None):
    """Answers one-row prompts with a list and numbered several-row prompts with an object keyed by number.

    `drop`: leave out the row whose query contains this word (the model 'forgot' it).
    """

    def respond(body: dict) -> str:
        block = last_block(body["prompt"])
        if ROWS_NOTE in body["prompt"]:
            lines = [line.split(". ", 1)[1] for line in block.split("\n")]
            reply = json.dumps({str(i): tags_for(q) for i, q in enumerate(lines, 1) if not (drop and drop in q)})
        else:
            reply = json.dumps(tags_for(block))
        return continuation(body, reply)

    return respond


def continuation(body: dict, reply: str) -> str:
    """What a model continues after a prefilled answer opening (`Output: ["`): the reply minus that opening."""
    opening = body.get("prompt", "").rsplit("Output: ", 1)[-1] if "prompt" in body else ""
    compact = reply.replace('", "', '","').replace('": ', '":').replace(", ", ",")
    return compact[len(opening):] if opening and compact.startswith(opening) else reply


QUERIES = [f"Question {w} about item number {i}" for i, w in enumerate("alpha beta gamma delta epsilon zeta eta theta iota kappa".split())]


def plain_tagger(server, cache_path, **kw) -> OpenTagger:
    config = LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path, backoff=0.05)
    return OpenTagger(config, explanations=False, input_column=None, **kw)


# -- generation that ends when the answer ends ------------------------------------------------------------
def test_free_structured_reply_stops_at_the_end_of_its_line(fault_server, cache_path):
    server = fault_server(responder=rows_responder())
    client = LLMClient(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path))
    [result] = client.run_structured([PLAIN_TAGGING_PROMPT.messages(QUERIES[0])], PlainTags)
    assert result.ok
    body = server.requests[0]
    # llama-cpp-python dialect -> constrain "repair": no grammar, one-line demos -> stop at the newline (not also at
    # the answers' closing: this server drops the matched stop, so a cut answer could not be told from a closed one)
    assert body["stop"] == ["\n"] and "grammar" not in body
    assert result.value == tags_for(QUERIES[0])


def test_answer_closing():
    assert answer_suffix(PLAIN_TAGGING_PROMPT.messages("x")) == '"]'
    assert answer_suffix(TAGGING_PROMPT.messages("x")) == '"}]'
    assert answer_suffix(FewShotPrompt("s", (("a", '["x"]'), ("b", '{"y":"1"}'))).messages("q")) == ""
    assert answer_suffix(FewShotPrompt("s", (("a", '{"n":1}'), ("b", '{"n":2}'))).messages("q")) == "}"
    assert answer_suffix(FewShotPrompt("s", (("a", '["x"]'),)).messages("q")) == ""
    nested = FewShotPrompt("s", (("a", '{"p":{"n":1},"q":{"n":2}}'), ("b", '{"p":{"n":3},"q":{"n":4}}')))
    assert answer_suffix(nested.messages("q")) == "}}"  # seen only at the end of each demo
    inner = FewShotPrompt("s", (("a", '{"p":{"n":1},"q":2}'), ("b", '{"p":{"n":3},"q":4}')))
    assert answer_suffix(inner.messages("q")) == ""  # "}" would stop the reply at the end of "p"


def test_tgi_also_stops_at_the_answer_closing(fault_server, cache_path):
    """TGI keeps the matched stop sequence in its reply, so there the answer's closing can end the reply too."""
    server = fault_server(tgi=True)  # TGI gets the grammar by default; generated freely, it stops at the closing too
    client = LLMClient(LLMConfig(endpoints=[server.url], route="completion", cache=False, repair_attempts=0, constrain="repair"))
    client.run_structured([PLAIN_TAGGING_PROMPT.messages("q")], PlainTags)
    assert server.requests[-1]["parameters"]["stop"] == ['"]', "\n"]


def test_stop_switches(fault_server, cache_path):
    server = fault_server(responder=rows_responder())
    base = dict(endpoints=[server.url], route="completion", cache=False)
    LLMClient(LLMConfig(**base, end_at_answer=False)).run_structured([PLAIN_TAGGING_PROMPT.messages("a b")], PlainTags)
    assert "stop" not in server.requests[-1]  # runs to max_tokens: the baseline the stop is measured against
    LLMClient(LLMConfig(**base, constrain="always")).run_structured([PLAIN_TAGGING_PROMPT.messages("a b")], PlainTags)
    constrained = server.requests[-1]
    # with a grammar the JSON's end ends the reply; no newline stop, since JSON may hold newlines
    assert "grammar" in constrained and constrained["stop"] == ["\n\n", "\nInput:"]
    LLMClient(LLMConfig(**base)).run_text([PLAIN_TAGGING_PROMPT.messages("a b")])
    assert server.requests[-1]["stop"] == ["\n\n", "\nInput:"]  # free text may span lines
    LLMClient(LLMConfig(**base, constrain="never")).run_structured([PLAIN_TAGGING_PROMPT.messages("c d")], PlainTags)
    assert "grammar" not in server.requests[-1]


def test_multiline_demonstrations_keep_the_transcript_stops():
    multi = FewShotPrompt("Answer.", (("q", '{\n  "a": 1\n}'),))
    assert not answers_single_line(multi.messages("x")) and not multi.single_line_answers
    assert answers_single_line(PLAIN_TAGGING_PROMPT.messages("x"))
    assert not answers_single_line([{"role": "user", "content": "zero-shot"}])


def test_tagger_caps_bare_tag_replies(fault_server, cache_path):
    server = fault_server(responder=rows_responder())
    tagger = plain_tagger(server, cache_path)
    tagger({"instruction": QUERIES[:1]})
    assert server.requests[0]["max_tokens"] == 48


# -- several rows per call --------------------------------------------------------------------------------
def test_rows_per_call_matches_one_row_per_call(fault_server, cache_path, tmp_path):
    single_server, multi_server = fault_server(responder=rows_responder()), fault_server(responder=rows_responder())
    ds = datasets.Dataset.from_dict({"instruction": QUERIES})
    single = ds.map(plain_tagger(single_server, cache_path), batched=True, batch_size=10)
    multi_tagger = plain_tagger(multi_server, str(tmp_path / "other.sqlite"), rows_per_call=4)
    multi = ds.map(multi_tagger, batched=True, batch_size=10)
    assert multi["tags"] == single["tags"] == [tags_for(q) for q in QUERIES]
    assert single_server.generation_requests == 10
    assert multi_server.generation_requests == 3  # 4 + 4 + 2 rows
    assert multi_tagger.usage.rows_fallback == 0
    first = multi_server.requests[0]
    assert first["prompt"].count("Input: 1. ") >= 2 and "\n4. " in first["prompt"]
    assert first["max_tokens"] == 48 * 4 + 8  # the per-row cap, times the rows


def test_rows_missing_from_a_combined_reply_are_asked_alone(fault_server, cache_path):
    server = fault_server(responder=rows_responder(drop="gamma"))
    tagger = plain_tagger(server, cache_path, rows_per_call=5)
    out = tagger({"instruction": QUERIES})
    assert out["tags"] == [tags_for(q) for q in QUERIES]
    assert tagger.usage.rows_fallback == 1
    assert server.generation_requests == 2 + 1
    assert server.requests[-1]["prompt"].endswith(f"Input: {QUERIES[2]}\nOutput: [\"")


def test_rows_invalid_items_fall_back_and_failures_stay_per_row(fault_server, cache_path):
    def respond(body):
        if ROWS_NOTE in body["prompt"]:
            return '{"1": ["ok one"], "2": "not a list", "3": ["ok three"]}'
        return "no json" if "gamma" in body["prompt"].rsplit("Input:", 1)[-1] else '["alone"]'

    server = fault_server(responder=respond)
    tagger = plain_tagger(server, cache_path, rows_per_call=3)
    out = tagger({"instruction": QUERIES[:3]})
    assert out["tags"][0] == ["ok one"] and out["tags"][1] == ["alone"]
    # row 3 was valid in the combined reply: no second call for it
    assert out["tags"][2] == ["ok three"] and out["tags_error"] == ["", "", ""]
    assert tagger.usage.rows_fallback == 1


def test_rows_prompt_shape():
    prompt = tagging_prompt(False)
    messages = prompt.rows_messages(["first\nline", "second"])
    assert messages[0]["content"].endswith(ROWS_NOTE)
    demos = [m for m in messages[1:-1] if m["role"] == "assistant"]
    assert len(demos) == 2 and all(len(json.loads(d["content"])) == 2 for d in demos)  # 4 examples, 2 per turn
    assert messages[-1]["content"] == "1. first line\n2. second"
    schema = rows_schema(schema_of(PlainTags), 2)
    assert schema["required"] == ["1", "2"] and schema["properties"]["1"]["type"] == "array"


# -- reuse of the shared few-shot prefix -------------------------------------------------------------------
def test_prompts_share_a_byte_identical_prefix():
    a = render_transcript(PLAIN_TAGGING_PROMPT.messages("first query"))
    b = render_transcript(PLAIN_TAGGING_PROMPT.messages("a different one"))
    shared = os.path.commonprefix([a, b])
    assert shared.endswith("\n\nInput: ") and len(shared) > 0.9 * min(len(a), len(b)) - 20
    assert prefix_key(PLAIN_TAGGING_PROMPT.messages("x")) == prefix_key(PLAIN_TAGGING_PROMPT.messages("y"))
    assert prefix_key(PLAIN_TAGGING_PROMPT.messages("x")) != prefix_key(tagging_prompt(False, 3).messages("x"))
    assert PLAIN_TAGGING_PROMPT == tagging_prompt(False) and len(PLAIN_TAGGING_PROMPT.examples) == 4


def _families(n: int):
    """Two prompt families (different few-shot prefixes), interleaved."""
    other = tagging_prompt(False, 3, system=False)
    return [(PLAIN_TAGGING_PROMPT if i % 2 == 0 else other).messages(f"query {i}") for i in range(n)]


def _family_of(body: dict) -> str:
    return "full" if body["prompt"].startswith("You tag") else "short"


@pytest.mark.parametrize("reuse", [True, False])
def test_prefix_affinity_keeps_each_family_on_one_replica(fault_server, cache_path, reuse):
    a, b = fault_server(responder=rows_responder()), fault_server(responder=rows_responder())
    config = LLMConfig(endpoints=[a.url, b.url], route="completion", cache=False, max_concurrency=1, prefix_reuse=reuse)
    client = LLMClient(config)
    results = client.run_structured(_families(12), PlainTags)
    assert all(r.ok for r in results)
    seen = [{_family_of(body) for body in server.requests} for server in (a, b)]
    if reuse:
        # after the first request of each family, each replica only ever sees its own family
        assert sorted(map(sorted, seen)) == [["full"], ["short"]]
    else:
        assert seen == [{"full", "short"}] * 2 or seen == [{"full"}, {"short"}] or seen == [{"short"}, {"full"}]
        assert a.generation_requests == b.generation_requests == 6  # plain round-robin


def test_repair_goes_back_to_the_replica_that_holds_the_whole_prompt(fault_server, cache_path):
    a, b = fault_server(responder=rows_responder()), fault_server(responder=rows_responder())
    a.plan, b.plan = [("garbage",)], [("garbage",)]
    client = LLMClient(LLMConfig(endpoints=[a.url, b.url], route="completion", cache=False, max_concurrency=1))
    [result] = client.run_structured([PLAIN_TAGGING_PROMPT.messages("query one")], PlainTags)
    assert result.ok
    served = [s for s in (a, b) if s.requests]
    assert len(served) == 1 and len(served[0].requests) == 2  # the repair went to the same server


def test_llama_cpp_server_gets_cache_prompt(fault_server, cache_path):
    server = fault_server(owned_by="llamacpp")
    for reuse in (True, False):
        client = LLMClient(LLMConfig(endpoints=[server.url], route="completion", cache=False, prefix_reuse=reuse))
        client.run_structured([PLAIN_TAGGING_PROMPT.messages("q")], PlainTags)
        assert server.requests[-1]["cache_prompt"] is reuse
        assert "json_schema" in server.requests[-1]  # llama.cpp's grammar is cheap: constrain "auto" -> always


def test_prefix_stats_reads_llama_cpp_python_logs(tmp_path):
    log = tmp_path / "server.log"
    log.write_text(
        'INFO:     127.0.0.1:1 - "POST /v1/completions HTTP/1.1" 200 OK\n'
        "Llama.generate: 300 prefix-match hit, remaining 40 prompt tokens to eval\n"
        'INFO:     127.0.0.1:1 - "POST /v1/completions HTTP/1.1" 200 OK\n'
        "Llama.generate: full prompt already cached, skipping reset\n"
        'INFO:     127.0.0.1:1 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n'
    )
    stats = LocalServers(urls=["http://127.0.0.1:1"], logs=[str(log)]).prefix_stats()
    assert stats == {"requests": 3, "prefix_hits": 1, "full_hits": 1, "reused_tokens": 300, "evaluated_tokens": 40}


# -- defaults -------------------------------------------------------------------------------------------------
def test_explanations_default_follows_the_model():
    embedded = LLMConfig(endpoints=["http://127.0.0.1:8080"], server="llama_cpp_python", embedded=True)
    assert is_embedded_model(embedded) and is_embedded_model(LLMConfig())
    # any other local server is not the embedded model: the flag comes from serve_local().config() (issue 13)
    assert not is_embedded_model(LLMConfig(endpoints=["http://127.0.0.1:8080"], server="llama_cpp_python"))
    assert OpenTagger(embedded).explanations is False
    remote = LLMConfig(endpoints=["https://my-endpoint.example/v1"])
    assert OpenTagger(remote).explanations is True
    assert OpenTagger(embedded, explanations=True).explanations is True


def test_constrain_must_be_known():
    from hf_prefsel.errors import ConfigError

    with pytest.raises(ConfigError, match="constrain"):
        LLMConfig(constrain="sometimes")
    with pytest.raises(ConfigError, match="rows_per_call"):
        OpenTagger(LLMConfig(), rows_per_call=0)
