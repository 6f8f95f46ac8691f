"""End-to-end against the real embedded model: llama.cpp servers on 127.0.0.1 and in process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import datasets
import pytest
from huggingface_hub import InferenceClient

from hf_prefsel.llm import LLMClient, LLMConfig
from hf_prefsel.llm.structured import chat_response_format, parse_reply, schema_of
from hf_prefsel.tacos import OpenTagger
from hf_prefsel.tacos.tagger import PLAIN_TAGGING_PROMPT, PlainTags

pytestmark = pytest.mark.slow


def _queries(rows, n):
    return [" ".join(r["instruction"].split())[:600] for r in rows[:n]]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the servers' command lines from /proc")
def test_replicas_evaluate_prompts_with_their_own_thread_only(local_servers):
    # the server's default (all cores for prompt evaluation) oversubscribed 2 cores with two replicas and
    # stalled prompt evaluation by seconds per request
    for proc in local_servers.processes:
        with open(f"/proc/{proc.pid}/cmdline") as fh:
            args = fh.read().split("\0")
        assert args[args.index("--n_threads") + 1] == "1"
        assert args[args.index("--n_threads_batch") + 1] == "1"


def test_structured_tags_for_20_real_instructions(local_servers, lima_rows, cache_path):
    client = LLMClient(local_servers.config(cache_path=cache_path, max_tokens=48))
    results = client.run_structured([PLAIN_TAGGING_PROMPT.messages(q) for q in _queries(lima_rows, 20)], PlainTags)
    valid = [r for r in results if r.ok]
    assert len(valid) >= 19, [r.error for r in results if not r.ok]
    assert all(1 <= len(r.value) <= 6 and all(t.strip() for t in r.value) for r in valid)
    assert client.usage.calls >= 20 and client.usage.completion_tokens > 0
    # both replicas served requests: the model id is the same GGUF behind both
    assert {b.server for b in client.backends} == {"llama_cpp_python"}

    rerun = LLMClient(local_servers.config(cache_path=cache_path, max_tokens=48))
    again = rerun.run_structured([PLAIN_TAGGING_PROMPT.messages(q) for q in _queries(lima_rows, 20)], PlainTags)
    assert rerun.usage.calls == 0 and rerun.usage.cache_hits == client.usage.calls - client.usage.retries
    assert [r.value for r in again] == [r.value for r in results]


def test_inference_client_chat_route_with_schema(local_servers, lima_rows, monkeypatch):
    """huggingface_hub.InferenceClient against the real server, with the llama.cpp schema form."""
    from huggingface_hub import constants

    # other test folders set HF_HUB_OFFLINE=1, which makes the hub client refuse even a localhost endpoint
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    client = InferenceClient(base_url=local_servers.urls[0])
    schema = schema_of(PlainTags)
    for query in _queries(lima_rows, 3):
        out = client.chat_completion(
            PLAIN_TAGGING_PROMPT.messages(query), max_tokens=48, temperature=0.0,
            response_format=chat_response_format("llama_cpp_python", schema),
        )
        tags = parse_reply(out.choices[0].message.content, PlainTags)
        assert 1 <= len(tags) <= 6
        assert out.usage.completion_tokens > 0


def test_killed_run_resumes_paying_only_for_the_rest(local_servers, lima_rows, tmp_path, cache_path):
    data = tmp_path / "rows.jsonl"
    datasets.Dataset.from_list([{"instruction": q} for q in _queries(lima_rows[20:], 16)]).to_json(str(data))
    script = textwrap.dedent(f"""
        import datasets
        from hf_prefsel.llm import LLMConfig
        from hf_prefsel.tacos import OpenTagger
        ds = datasets.load_dataset("json", data_files={str(data)!r}, split="train")
        config = LLMConfig(endpoints={local_servers.urls!r}, route="completion", server="llama_cpp_python",
                           max_concurrency=2, cache_path={cache_path!r}, max_tokens=48)
        ds.map(OpenTagger(config, explanations=False, input_column=None), batched=True, batch_size=4)
        print("finished")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    done_before_kill = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(cache_path):
            with sqlite3.connect(cache_path, timeout=30) as conn:
                try:
                    done_before_kill = conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
                except sqlite3.OperationalError:
                    done_before_kill = 0
            if done_before_kill >= 6:
                break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(cache_path) as conn:
        kept = conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
    assert 6 <= kept < 16

    ds = datasets.load_dataset("json", data_files=str(data), split="train")
    config = LLMConfig(endpoints=local_servers.urls, route="completion", server="llama_cpp_python",
                       max_concurrency=2, cache_path=cache_path, max_tokens=48)
    tagger = OpenTagger(config, explanations=False, input_column=None)
    out = ds.map(tagger, batched=True, batch_size=4, load_from_cache_file=False)
    assert all(out["tags"])
    # every reply paid before the kill is reused, and only the missing requests are paid now:
    # 16 first requests (+ any repair requests) in all, across both runs
    assert tagger.usage.cache_hits == kept
    assert tagger.usage.calls + tagger.usage.cache_hits == 16 + tagger.usage.repairs


def test_in_process_embedded_model(lima_rows, cache_path):
    pytest.importorskip("llama_cpp")
    ds = datasets.Dataset.from_list([{"instruction": q} for q in _queries(lima_rows, 2)])
    tagger = OpenTagger(LLMConfig(cache_path=cache_path, max_tokens=48), explanations=False, input_column=None)
    out = ds.map(tagger, batched=True)
    assert all(out["tags"]), out["tags_error"]
    assert tagger.usage.calls >= 2


IN_PROCESS_EXIT = """
import atexit
from hf_prefsel.llm import LLMConfig, get_client
from hf_prefsel.llm import backends

def check():  # registered first, so it runs last (atexit is last in, first out)
    print("freed" if not backends._LLAMAS and model._model.model is None else "still loaded")

atexit.register(check)
client = get_client(LLMConfig(cache=False, max_tokens=2))
assert client.run_text([[{"role": "user", "content": "Say hi"}]])[0].ok
model = next(iter(backends._LLAMAS.values()))
"""


def test_in_process_models_are_freed_at_exit():
    """Freed by our exit handler, not by `Llama.__del__` at interpreter teardown (which fails once the bindings go)."""
    done = subprocess.run([sys.executable, "-c", IN_PROCESS_EXIT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "freed"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
