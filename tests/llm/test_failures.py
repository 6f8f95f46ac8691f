"""Failed, recovering, swapped, silent and refusing endpoints: a failure never passes as a result, never hangs.

Each test reproduces one defect of issue 14 against a fake endpoint (`tests/conftest.py`'s `FaultServer`, or a
socket that accepts connections and never answers).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time

import datasets
import pytest

from hf_prefsel.errors import EndpointAccessError, EndpointError, EndpointUnavailableError
from hf_prefsel.llm import LLMClient, LLMConfig, RequestCache
from hf_prefsel.llm import client as client_module
from hf_prefsel.tacos.tagger import TAGGING_PROMPT, IntentTags, OpenTagger

QUESTIONS = ["Sort a list in Python", "Plan a trip to Kyoto", "Explain photosynthesis simply"]


@pytest.fixture
def rows_on_disk(tmp_path):
    """A file-backed dataset, so `datasets` keeps map results in cache files (where stale results lived)."""
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"instruction": q}) + "\n" for q in QUESTIONS))
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))


def tagger(server, cache_path, **llm) -> OpenTagger:
    settings = dict(backoff=0.01, max_retries=1, max_concurrency=4)
    settings.update(llm)
    return OpenTagger(server.config(cache_path, **settings), explanations=True)


def new_process(monkeypatch) -> None:
    """Forget this process's clients, as a rerun from the command line would start without them."""
    monkeypatch.setattr(client_module, "_CLIENTS", {})


def first_words(questions=QUESTIONS) -> list[list[str]]:
    return [[f"topic {q.split()[0].lower()}"] for q in questions]


# -- item 1: stale results on rerun ------------------------------------------------------------------------------
def test_rerun_after_failed_rows_pays_for_them_and_returns_good_tags(fault_server, cache_path, rows_on_disk, monkeypatch):
    server = fault_server()
    server.plan = [("status", 500)] * 6  # 3 rows x 2 attempts
    failed = rows_on_disk.map(tagger(server, cache_path), batched=True)
    assert all(failed["tags_error"]) and server.generation_requests == 6

    new_process(monkeypatch)  # the endpoint recovered; the user reruns the identical command
    rerun = tagger(server, cache_path)
    again = rows_on_disk.map(rerun, batched=True)
    assert server.generation_requests == 9, "the rerun must pay for the three failed rows"
    assert again["tags"] == first_words() and not any(again["tags_error"])
    assert rerun.usage.calls == 3 and rerun.usage.rows_failed == 0

    # a clean result is kept: the third identical run is served by the datasets cache, no call, no lookup
    new_process(monkeypatch)
    third_tagger = tagger(server, cache_path)
    third = rows_on_disk.map(third_tagger, batched=True)
    assert third["tags"] == again["tags"] and third.cache_files == again.cache_files
    assert server.generation_requests == 9 and third_tagger.usage.cache_hits == 0


def test_rerun_after_failed_several_rows_calls(fault_server, cache_path, rows_on_disk):
    server = fault_server()
    server.plan = [("status", 502)] * 4  # both calls of 2 + 1 rows, twice each
    make = lambda: OpenTagger(server.config(cache_path, backoff=0.01, max_retries=1), explanations=True,  # noqa: E731
                              rows_per_call=2)
    assert all(rows_on_disk.map(make(), batched=True)["tags_error"])
    again = rows_on_disk.map(make(), batched=True)
    # the rerun: the two-row call (the fake answers it with one list, so both rows are asked again alone) and the third
    assert not any(again["tags_error"]) and server.generation_requests == 4 + 4


def test_failures_in_this_process_also_change_the_identity(fault_server, cache_path, rows_on_disk):
    server = fault_server()
    server.plan = [("status", 503)] * 2
    first = rows_on_disk.map(tagger(server, cache_path, max_retries=0), batched=True)
    assert sum(bool(e) for e in first["tags_error"]) == 2
    again = rows_on_disk.map(tagger(server, cache_path, max_retries=0), batched=True)
    assert not any(again["tags_error"]) and server.generation_requests == 5  # 3, then the 2 failed rows again


def test_swapped_model_behind_the_url_is_asked_again(fault_server, cache_path, rows_on_disk, monkeypatch):
    server = fault_server()
    old = rows_on_disk.map(tagger(server, cache_path), batched=True)
    assert old["tags"] == first_words() and server.generation_requests == 3

    server.model_id = "/models/another-model.gguf"
    server.responder = lambda body: json.dumps([{"tag": "new model", "explanation": "x"}])
    for fresh_process in (False, True):  # a notebook rerun, then a command-line rerun
        if fresh_process:
            new_process(monkeypatch)
        swapped = rows_on_disk.map(tagger(server, cache_path), batched=True)
        assert swapped["tags"] == [["new model"]] * 3
    assert server.generation_requests == 6  # paid once for the new model, then from the request cache


def test_without_request_cache_datasets_never_reuses_a_result(fault_server, rows_on_disk):
    server = fault_server()
    for _ in range(2):
        out = rows_on_disk.map(tagger(server, None), batched=True)
        assert out["tags"] == first_words()
    assert server.generation_requests == 6


def test_identity_is_stable_when_nothing_failed(fault_server, cache_path):
    server = fault_server()
    a, b = tagger(server, cache_path), tagger(server, cache_path)
    assert datasets.fingerprint.Hasher.hash(a) == datasets.fingerprint.Hasher.hash(b)
    assert "result_identity" not in repr(a)


def test_concept_tagger_rerun_and_single_rows(fault_server, cache_path, rows_on_disk, monkeypatch):
    from hf_prefsel.tags import ConceptTagger

    server = fault_server(responder=lambda body: '["concept one"]')
    server.plan = [("status", 500)] * 6
    make = lambda: ConceptTagger(server.config(cache_path, backoff=0.01, max_retries=1))  # noqa: E731
    failed = rows_on_disk.map(make(), batched=True)
    assert all(failed["concepts_error"])
    new_process(monkeypatch)
    again = rows_on_disk.map(make(), batched=True)
    assert again["concepts"] == [["concept one"]] * 3 and server.generation_requests == 9
    with pytest.warns(UserWarning, match="batched=True"):
        single = rows_on_disk.map(make(), load_from_cache_file=False)
    assert single["concepts"] == again["concepts"] and server.generation_requests == 9


# -- item 2: a map without batched=True -------------------------------------------------------------------------
@pytest.mark.parametrize("with_indices", [False, True])
def test_map_without_batched_tags_each_row_once(fault_server, cache_path, with_indices):
    ds = datasets.Dataset.from_dict({"instruction": QUESTIONS[:2], "input": ["", ""]})
    server = fault_server()
    with pytest.warns(UserWarning, match="batched=True"):
        out = ds.map(tagger(server, cache_path), with_indices=with_indices)
    assert server.generation_requests == 2
    assert out["tags"] == first_words(QUESTIONS[:2]) and out["tags_error"] == ["", ""]


# -- item 3: timeouts that fit the failure -----------------------------------------------------------------------
@pytest.fixture
def silent_url():
    """An endpoint that accepts connections (the kernel completes them from the backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_silent_endpoint_fails_fast_naming_the_url(silent_url, cache_path):
    config = LLMConfig(endpoints=[silent_url], cache_path=cache_path, connect_timeout=0.5, max_retries=2, backoff=0.01)
    start = time.monotonic()
    with pytest.raises(EndpointUnavailableError) as info:
        LLMClient(config).run_structured([TAGGING_PROMPT.messages(f"Question {i}") for i in range(12)], IntentTags)
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert silent_url in message and "no answer" in message and "3 attempts" in message
    # a probe of 0.5 s per round of attempts, whatever the number of rows queued, and no request timeout
    assert 1.0 < elapsed < 3, elapsed


@pytest.mark.slow
def test_silent_endpoint_with_default_settings_is_reported_within_about_a_minute(silent_url, cache_path):
    start = time.monotonic()
    with pytest.raises(EndpointUnavailableError, match="no answer"):
        LLMClient(LLMConfig(endpoints=[silent_url], cache_path=cache_path)).run_structured(
            [TAGGING_PROMPT.messages(QUESTIONS[0])], IntentTags
        )
    assert time.monotonic() - start < 75


def test_many_requests_to_a_silent_endpoint_stop_together(silent_url, cache_path):
    from hf_prefsel.llm.gather import gather

    client = LLMClient(LLMConfig(endpoints=[silent_url], cache_path=cache_path, connect_timeout=0.5, max_retries=1,
                                 backoff=0.01))
    start = time.monotonic()
    with pytest.raises(EndpointUnavailableError, match="no answer"):  # not one error per request, one after another
        gather([client.generate(TAGGING_PROMPT.messages(f"Question {i}")) for i in range(16)])
    assert time.monotonic() - start < 3


def test_generation_that_never_ends_stops_at_the_deadline(fault_server, cache_path):
    server = fault_server()
    server.plan = [("sleep", 30)] * 20
    config = server.config(cache_path, timeout=0.4, deadline=1.0, max_retries=10)
    start = time.monotonic()
    with pytest.raises(EndpointUnavailableError) as info:
        LLMClient(config).run_structured([TAGGING_PROMPT.messages(QUESTIONS[0])], IntentTags)
    assert time.monotonic() - start < 2.5
    assert server.url in str(info.value) and "deadline" in str(info.value)


def test_timeout_fields_are_validated():
    from hf_prefsel.errors import ConfigError

    for field in ("timeout", "connect_timeout", "deadline"):
        with pytest.raises(ConfigError, match=field):
            LLMConfig(**{field: 0})
    assert LLMConfig(deadline=None).deadline is None


# -- item 7: 401/403/404 are not retried -------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "hint"), [(401, "token"), (403, "access"), (404, "model name")])
def test_refusals_are_not_retried_and_say_what_to_do(fault_server, cache_path, status, hint):
    server = fault_server()
    server.plan = [("status", status)] * 5
    # server and model given: no probe, the generation request itself is refused
    config = server.config(cache_path, server="llama_cpp_python", model="m", max_retries=4)
    with pytest.raises(EndpointAccessError) as info:
        LLMClient(config).run_structured([TAGGING_PROMPT.messages(QUESTIONS[0])], IntentTags)
    assert server.generation_requests == 1
    with pytest.raises(EndpointAccessError):  # the whole run stops, no request is retried
        LLMClient(config).run_structured([TAGGING_PROMPT.messages(f"{q} {i}") for i, q in enumerate(QUESTIONS * 3)],
                                         IntentTags)
    assert server.generation_requests <= 1 + 9
    assert server.url in str(info.value) and str(status) in str(info.value) and hint in str(info.value)


def test_wrong_token_is_refused_at_the_probe_without_leaking_it(fault_server, cache_path):
    server = fault_server()
    server.require_token = "the-right-one"
    config = server.config(cache_path, token="sk-proj-WrongToken0123456789abcdef", max_retries=4)
    with pytest.raises(EndpointAccessError) as info:
        LLMClient(config).run_structured([TAGGING_PROMPT.messages(QUESTIONS[0])], IntentTags)
    assert server.generation_requests == 0 and len(server.authorizations) <= 2  # /info and /v1/models, once each
    assert "401" in str(info.value) and server.url in str(info.value)
    assert "WrongToken" not in str(info.value)
    cause = info.value.__cause__
    while cause is not None:
        assert "WrongToken" not in str(cause)
        cause = cause.__cause__


def test_map_over_a_refusing_endpoint_raises_the_access_error(fault_server, cache_path, rows_on_disk):
    server = fault_server()
    server.require_token = "the-right-one"
    with pytest.raises(EndpointAccessError, match="401"):
        rows_on_disk.map(tagger(server, cache_path, token="wrong-token-value"), batched=True)
    assert server.generation_requests == 0


def test_usage_counts_failed_rows_for_the_exit_status(fault_server, cache_path, rows_on_disk):
    server = fault_server()
    server.plan = [("status", 500)] * 6
    t = tagger(server, cache_path)
    rows_on_disk.map(t, batched=True)
    assert (t.usage.rows, t.usage.rows_failed) == (3, 3)


# -- item 8: error columns keep a short, redacted reason ---------------------------------------------------------
def test_error_column_never_holds_a_secret(fault_server, rows_on_disk, cache_path):
    server = fault_server()
    echoed = {"error": "Invalid credentials", "request": {"Authorization": "Bearer sk-live-0123456789abcdefghij",
              "Cookie": "session=s3cr3tcookie", "x": "AKIAIOSFODNN7EXAMPLE"}, "detail": "unknown key my-own-Key-42 " * 30}
    server.plan = [("status", 400, echoed)] + [("status", 500, echoed)] * 4  # one row refused, two fail twice
    out = rows_on_disk.map(tagger(server, cache_path, token="my-own-Key-42"), batched=True)
    errors = [e for e in out["tags_error"] if e]
    assert len(errors) == 3
    for error in errors:
        assert "HTTP" in error and len(error) < 400
        for secret in ("sk-live", "s3cr3t", "AKIAIOSFODNN7EXAMPLE", "my-own-Key-42"):
            assert secret not in error


# -- the request cache file and /v1 base URLs -------------------------------------------------------------------
def test_request_cache_is_private(tmp_path):
    path = tmp_path / "new" / "requests.sqlite"
    RequestCache(str(path)).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    old = tmp_path / "old.sqlite"
    old.touch(mode=0o644)
    os.chmod(old, 0o644)
    RequestCache(str(old)).close()
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o600


def test_base_url_ending_in_v1_is_accepted(fault_server, cache_path):
    server = fault_server()
    for suffix in ("/v1", "/v1/", "/v1/chat/completions"):
        assert LLMConfig(endpoints=[server.url + suffix]).endpoints == [server.url]
    client = LLMClient(server.config(cache_path, endpoints=[server.url + "/v1"]))
    [result] = client.run_structured([TAGGING_PROMPT.messages(QUESTIONS[0])], IntentTags)
    assert result.ok, result.error


def test_other_client_errors_stay_per_row(fault_server, cache_path):
    server = fault_server()
    server.plan = [("status", 400)]
    client = LLMClient(server.config(cache_path, max_concurrency=1))
    results = client.run_structured([TAGGING_PROMPT.messages(q) for q in QUESTIONS[:2]], IntentTags)
    assert not results[0].ok and results[1].ok
    assert isinstance(EndpointAccessError("x"), EndpointError)


def test_single_row_detection_outside_datasets(fault_server, cache_path):
    t = tagger(fault_server(), cache_path)
    with pytest.warns(UserWarning, match="batched=True"):
        row = t({"instruction": QUESTIONS[0], "input": None})
    assert row["tags"] == first_words(QUESTIONS[:1])[0] and row["tags_error"] == ""
    batch = t({"instruction": tuple(QUESTIONS[:2])})  # any sequence of values is a batch
    assert batch["tags"] == first_words(QUESTIONS[:2])
