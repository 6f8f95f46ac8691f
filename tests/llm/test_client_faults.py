"""Retries, timeouts, repair, budget, cache and load balancing against a fault-injecting server."""

from __future__ import annotations

import time

import pytest

from hf_prefsel.errors import EndpointError, EndpointUnavailableError
from hf_prefsel.llm import LLMClient, LLMConfig, free_port
from hf_prefsel.tacos.tagger import TAGGING_PROMPT, IntentTags


def make_client(urls, cache_path, **kw) -> LLMClient:
    settings = dict(endpoints=urls, route="completion", cache_path=cache_path, backoff=0.05, timeout=5)
    settings.update(kw)
    return LLMClient(LLMConfig(**settings))


def prompts(n: int):
    return [TAGGING_PROMPT.messages(f"Query{i} about something") for i in range(n)]


def test_retries_429_and_5xx_then_succeeds(fault_server, cache_path):
    server = fault_server()
    server.plan = [("status", 429), ("status", 503), ("status", 500)]
    client = make_client([server.url], cache_path)
    [result] = client.run_structured(prompts(1), IntentTags)
    assert result.ok, result.error
    assert result.value[0].tag == "topic query0"
    assert client.usage.retries == 3
    assert client.usage.calls == 4
    assert server.generation_requests == 4


def test_client_error_is_not_retried_and_recorded(fault_server, cache_path):
    server = fault_server()
    server.plan = [("status", 400)]
    client = make_client([server.url], cache_path)
    [result] = client.run_structured(prompts(1), IntentTags)
    assert not result.ok
    assert "400" in result.error
    assert server.generation_requests == 1
    assert client.usage.failures == 1


def test_persistent_5xx_gives_endpoint_error(fault_server, cache_path):
    server = fault_server()
    server.plan = [("status", 502)] * 10
    client = make_client([server.url], cache_path, max_retries=2)
    [result] = client.run_structured(prompts(1), IntentTags)
    assert not result.ok and "502" in result.error
    assert server.generation_requests == 3


def test_dead_endpoint_fails_fast_with_clear_error(cache_path):
    url = f"http://127.0.0.1:{free_port()}"
    client = make_client([url], cache_path, max_retries=2)
    start = time.monotonic()
    with pytest.raises(EndpointUnavailableError, match="could not be reached after 3 attempts"):
        client.run_structured(prompts(2), IntentTags)
    assert time.monotonic() - start < 10


def test_timeout_is_retried_and_bounded(fault_server, cache_path):
    server = fault_server()
    server.plan = [("sleep", 3)]
    client = make_client([server.url], cache_path, timeout=0.5)
    start = time.monotonic()
    [result] = client.run_structured(prompts(1), IntentTags)
    assert result.ok
    assert client.usage.retries == 1
    assert time.monotonic() - start < 3


def test_hanging_endpoint_never_hangs_the_caller(fault_server, cache_path):
    server = fault_server()
    server.plan = [("sleep", 30)] * 5
    client = make_client([server.url], cache_path, timeout=0.3, max_retries=1)
    start = time.monotonic()
    with pytest.raises(EndpointUnavailableError):
        client.run_structured(prompts(1), IntentTags)
    assert time.monotonic() - start < 5


def test_dropped_connection_is_retried(fault_server, cache_path):
    server = fault_server()
    server.plan = [("drop",)]
    client = make_client([server.url], cache_path)
    [result] = client.run_structured(prompts(1), IntentTags)
    assert result.ok
    assert client.usage.retries == 1


def test_garbage_output_is_repaired_then_counted(fault_server, cache_path):
    server = fault_server()
    server.plan = [("garbage",)]
    client = make_client([server.url], cache_path, repair_attempts=2)
    [result] = client.run_structured(prompts(1), IntentTags)
    assert result.ok
    assert client.usage.invalid_replies == 1 and client.usage.repairs == 1
    # llama-cpp-python dialect, constrain="auto" -> "repair": free first, then free again with a repetition penalty
    first, repair = server.requests
    # the penalty is always sent (1.0 = none), so the reply never depends on the server's own default (1.1 here)
    assert "grammar" not in first and first["temperature"] == 0.0 and first["repeat_penalty"] == 1.0
    assert "grammar" not in repair and repair["temperature"] == 0.0 and repair["repeat_penalty"] == 1.3

    server.plan = [("garbage",)] * 3
    [bad] = client.run_structured([TAGGING_PROMPT.messages("Another query")], IntentTags)
    assert not bad.ok
    assert bad.error.startswith("StructuredOutputError")
    assert bad.raw == "I think the tags are good ones"
    assert client.usage.failures == 1
    # the last re-ask is the grammar, with the first request's greedy sampling
    *_, penalised, constrained = server.requests
    assert "grammar" not in penalised and penalised["repeat_penalty"] == 1.3
    assert "grammar" in constrained and constrained["temperature"] == 0.0 and "seed" not in constrained
    assert constrained["repeat_penalty"] == 1.0


@pytest.mark.parametrize(
    ("owned_by", "route", "attempts", "ladder"),
    [
        # a longer ladder: free re-asks with the penalty (resampled after the first), the grammar last
        ("me", "completion", 3, [("free", 1.0, None), ("free", 1.3, None), ("free", 1.3, 1001), ("grammar", 1.0, None)]),
        # a server without a repetition penalty (OpenAI's API): grammar re-asks, greedy then resampled
        ("someone", "chat", 2, [("free", None, None), ("grammar", None, None), ("grammar", None, 1001)]),
    ],
)
def test_repair_ladder(fault_server, cache_path, owned_by, route, attempts, ladder):
    server = fault_server(owned_by=owned_by)
    server.plan = [("garbage",)] * (attempts + 1)
    client = make_client([server.url], cache_path, repair_attempts=attempts, constrain="repair", route=route)
    [bad] = client.run_structured(prompts(1), IntentTags)
    assert not bad.ok and client.usage.repairs == attempts
    penalty = "repeat_penalty" if owned_by == "me" else "repetition_penalty"
    seen = [
        ("grammar" if ("grammar" in r or "response_format" in r) else "free", r.get(penalty), r.get("seed"))
        for r in server.requests
    ]
    assert seen == ladder


def test_always_constrained_repairs_resample(fault_server, cache_path):
    server = fault_server()
    server.plan = [("garbage",)]
    client = make_client([server.url], cache_path, repair_attempts=2, constrain="always")
    [result] = client.run_structured(prompts(1), IntentTags)
    assert result.ok
    first, repair = server.requests
    assert "grammar" in first and first["temperature"] == 0.0
    assert repair["temperature"] == 0.7 and repair["seed"] == 1000


def test_schema_violations_are_invalid(fault_server, cache_path):
    server = fault_server()
    server.plan = [("ok", "[]"), ("ok", '[{"tag": "x"}]')]
    client = make_client([server.url], cache_path, repair_attempts=1)
    [result] = client.run_structured(prompts(1), IntentTags)
    assert not result.ok
    assert "explanation" in result.error
    assert client.usage.invalid_replies == 2


def test_cache_makes_rerun_free(fault_server, cache_path):
    server = fault_server()
    first = make_client([server.url], cache_path)
    a = first.run_structured(prompts(5), IntentTags)
    assert first.usage.calls == 5
    second = make_client([server.url], cache_path)
    b = second.run_structured(prompts(5), IntentTags)
    assert second.usage.calls == 0 and second.usage.cache_hits == 5
    assert [r.value for r in a] == [r.value for r in b]
    assert server.generation_requests == 5


def test_cache_disabled_pays_again(fault_server, cache_path):
    server = fault_server()
    for _ in range(2):
        make_client([server.url], cache_path, cache=False).run_structured(prompts(2), IntentTags)
    assert server.generation_requests == 4


def test_call_budget_stops_cleanly_and_keeps_work(fault_server, cache_path):
    server = fault_server()
    client = make_client([server.url], cache_path, max_calls=3, max_concurrency=1)
    results = client.run_structured(prompts(5), IntentTags)
    assert sum(r.ok for r in results) == 3
    assert all("BudgetExceededError" in r.error for r in results if not r.ok)
    assert server.generation_requests == 3
    # a rerun with a bigger budget pays only for the two missing rows
    bigger = make_client([server.url], cache_path, max_calls=10)
    assert all(r.ok for r in bigger.run_structured(prompts(5), IntentTags))
    assert bigger.usage.calls == 2 and bigger.usage.cache_hits == 3


def test_replicas_share_the_load_and_survive_one_down(fault_server, cache_path):
    a, b = fault_server(), fault_server()
    client = make_client([a.url, b.url], cache_path, max_concurrency=2)
    assert all(r.ok for r in client.run_structured(prompts(10), IntentTags))
    assert a.generation_requests >= 3 and b.generation_requests >= 3
    assert a.generation_requests + b.generation_requests == 10

    dead = f"http://127.0.0.1:{free_port()}"
    client = make_client([dead, b.url], cache_path, max_concurrency=2)
    results = client.run_structured([TAGGING_PROMPT.messages(f"Other {i}") for i in range(4)], IntentTags)
    assert all(r.ok for r in results)


def test_token_is_sent_but_never_shown(fault_server, cache_path):
    server = fault_server()
    config = LLMConfig(endpoints=[server.url], token="hf_secret_value", cache_path=cache_path)
    assert "hf_secret_value" not in repr(config)
    assert "hf_secret_value" not in repr(LLMClient(config))
    assert "token" not in config.fingerprint_state()


def test_chat_route_sends_messages_and_repairs_with_feedback(fault_server, cache_path):
    server = fault_server()
    server.plan = [("garbage",)]
    client = make_client([server.url], cache_path, route="chat")
    [result] = client.run_structured(prompts(1), IntentTags)
    assert result.ok
    first, repair = server.requests
    assert first["messages"][0]["role"] == "system"
    assert "response_format" not in first and "stop" not in first  # repair mode: free first; no stop on the chat route
    assert "response_format" not in repair and repair["repeat_penalty"] == 1.3  # through the hub client's extra_body
    assert repair["messages"][-2] == {"role": "assistant", "content": "I think the tags are good ones"}
    assert "not valid" in repair["messages"][-1]["content"]

    server.plan = [("garbage",)] * 2
    [result] = client.run_structured([TAGGING_PROMPT.messages("Another query")], IntentTags)
    constrained = server.requests[-1]
    assert result.ok and constrained["repeat_penalty"] == 1.0 and "not valid" in constrained["messages"][-1]["content"]
    assert constrained["response_format"] == {"type": "json_object", "schema": constrained["response_format"]["schema"]}


def test_server_dialects(fault_server, cache_path):
    vllm = fault_server(owned_by="vllm")
    client = make_client([vllm.url], cache_path, route="chat")
    client.run_structured(prompts(1), IntentTags)
    assert vllm.requests[0]["response_format"]["type"] == "json_schema"
    client = make_client([vllm.url], cache_path)
    client.run_structured(prompts(1), IntentTags)
    assert "structured_outputs" in vllm.requests[1]


@pytest.mark.parametrize(
    ("server_kw", "route", "field"),
    [
        ({"owned_by": "llamacpp"}, "completion", "repeat_penalty"),
        ({"owned_by": "vllm"}, "completion", "repetition_penalty"),
        ({"owned_by": "vllm"}, "chat", "repetition_penalty"),
        ({"tgi": True}, "completion", "repetition_penalty"),
        ({"tgi": True}, "chat", None),  # TGI's Messages API has no repetition penalty: the repair uses the grammar
    ],
)
def test_repair_penalty_in_each_servers_field(fault_server, cache_path, server_kw, route, field):
    server = fault_server(**server_kw)
    server.plan = [("garbage",)]
    client = make_client([server.url], cache_path, constrain="repair", route=route)
    [result] = client.run_structured(prompts(1), IntentTags)
    assert result.ok, result.error
    first, repair = (r.get("parameters", r) for r in server.requests)
    # every request carries the penalty in the server's field (1.0 = none unless repairing), where it has one
    for request, penalty in ((first, 1.0), (repair, 1.3)):
        sent = {key: request[key] for key in ("repeat_penalty", "repetition_penalty") if request.get(key) is not None}
        assert sent == ({field: penalty} if field else {})


def test_rejects_bad_config():
    from hf_prefsel.errors import ConfigError

    with pytest.raises(ConfigError, match="http"):
        LLMConfig(endpoints=["localhost:8080"])
    with pytest.raises(ConfigError):
        LLMConfig(route="fast")
    with pytest.raises(EndpointError.__mro__[1]):
        LLMConfig(max_concurrency=0)


def test_hub_offline_mode_still_reaches_local_endpoints(fault_server, cache_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    server = fault_server()
    client = make_client([server.url], cache_path, route="chat")
    [result] = client.run_structured(prompts(1), IntentTags)
    assert result.ok, result.error
    assert server.requests[0]["messages"][-1]["content"] == "Query0 about something"


def test_tgi_dialect_on_both_routes(fault_server, cache_path):
    tgi = fault_server(tgi=True)
    chat = make_client([tgi.url], cache_path, route="chat")
    [result] = chat.run_structured(prompts(1), IntentTags)
    assert result.ok, result.error
    assert tgi.requests[0]["response_format"]["type"] == "json"
    assert tgi.requests[0]["response_format"]["value"]["type"] == "array"

    completion = make_client([tgi.url], cache_path, route="completion")
    [result] = completion.run_structured(prompts(1), IntentTags)
    assert result.ok, result.error
    body = tgi.requests[1]
    assert body["inputs"].endswith("Output:")
    assert body["parameters"]["grammar"]["type"] == "json"
    assert completion.usage.prompt_tokens == 7 and completion.usage.completion_tokens == 4
