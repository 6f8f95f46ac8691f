"""In-process log-probabilities on the bundled Gemma: options read from one pass equal the per-option continuations,
in one model call; the request cache still answers them. Small: a few short decodes, no request cache by default."""

from __future__ import annotations

import pytest

from hf_prefsel.errors import BudgetExceededError
from hf_prefsel.llm import LLMConfig
from hf_prefsel.llm.logprobs import HTTPLogprobs, LocalLogprobs

pytestmark = pytest.mark.slow

PROMPT = ("Rate the answer from 1 (useless) to 9 (perfect).\nQuestion: What is the capital of France?\n"
          "Answer: Paris.\nOutput:")
DIGITS = [f" {d}" for d in range(1, 10)]


@pytest.fixture(scope="module")
def source():
    pytest.importorskip("llama_cpp")
    local = LocalLogprobs(n_ctx=256, n_threads=1)
    yield local
    local.close()


def one_by_one(source: LocalLogprobs, options: list[str]) -> dict[str, float]:
    """The per-option path: each option scored as a continuation of its own."""
    return {option: sum(source.continuation(PROMPT, option)) for option in options}


@pytest.mark.parametrize("options", [DIGITS, [" 1", " 2"]])
def test_options_from_one_pass_equal_their_continuations(source, options):
    before = source.usage.calls
    fast = source.choices(PROMPT, options)
    assert source.usage.calls - before == 1  # one decode instead of one per option
    slow = one_by_one(source, options)
    assert source.usage.calls - before == 1 + len(options)
    assert fast == pytest.approx(slow, abs=1e-5)
    # the one pass reads the rows the continuations read: the space token, then the digit
    assert len(source.continuation(PROMPT, options[0])) == 2


def test_options_differing_earlier_are_scored_one_by_one(source):
    options = [" Paris.", " London is"]  # other first tokens, other lengths
    before = source.usage.calls
    got = source.choices(PROMPT, options)
    assert source.usage.calls - before == len(options)
    assert got == pytest.approx(one_by_one(source, options), abs=1e-5)


def test_one_pass_results_are_cached_per_option(source, cache_path):
    first = LocalLogprobs(n_ctx=256, n_threads=1, cache_path=cache_path)
    got = first.choices(PROMPT, DIGITS)
    assert (first.usage.calls, first.usage.cache_hits) == (1, 0)
    assert first.choices(PROMPT, DIGITS) == got and (first.usage.calls, first.usage.cache_hits) == (1, 9)
    assert sum(first.continuation(PROMPT, " 3")) == got[" 3"]  # stored as `continuation` stores it
    again = LocalLogprobs(n_ctx=256, cache_path=cache_path)  # a rerun: answered from the cache, no model loaded
    assert again.choices(PROMPT, DIGITS) == got
    assert again._llm is None and again.usage.calls == 0
    first.close()
    again.close()


def test_model_passes_are_held_to_the_budget_and_cache_hits_are_free(cache_path):
    local = LocalLogprobs(n_ctx=256, n_threads=1, cache_path=cache_path, max_calls=1)
    try:
        scores = local.continuation(PROMPT, " 3")
        assert local.continuation(PROMPT, " 3") == scores  # a cache hit: free, even with the budget spent
        assert local.choices(PROMPT, [" 3"]) == {" 3": pytest.approx(sum(scores))}
        with pytest.raises(BudgetExceededError, match="call budget of 1"):
            local.choices(PROMPT, [" 3", " 4"])
        assert (local.usage.calls, local.usage.cache_hits) == (1, 3)
    finally:
        local.close()


def test_close_frees_the_model():
    local = LocalLogprobs(n_ctx=256, n_threads=1)
    model = local.llm
    local.close()
    assert local._llm is None and model._model.model is None  # freed now, not when collected
    assert local.continuation("Response:", " Blue.")  # a closed source loads the model again when asked


EXIT_SCRIPT = """
import atexit
from hf_prefsel.llm import LLMConfig
from hf_prefsel.llm.logprobs import logprob_source

def check():  # registered first, so it runs after the handlers registered later (atexit is last in, first out)
    print("freed" if source._llm is None and model._model.model is None else "still loaded")

atexit.register(check)
source = logprob_source(LLMConfig(cache=False))
assert source.choices("Rate it from 1 to 9.\\nOutput:", [" 1", " 2"])
model = source._llm
"""


def test_shared_sources_are_closed_at_exit():
    """The shared source frees its model at exit, before llama-cpp-python's bindings are torn down."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "freed"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


def test_embedded_servers_are_read_in_process(cache_path):
    """`serve_local()` servers return no log-probabilities (started without prompt logits): their config is read from
    the same model file in process, not asked over HTTP (which would fall back to sampled verdicts)."""
    from hf_prefsel.llm.logprobs import close_logprob_sources, logprob_source

    try:
        servers = LLMConfig(endpoints=["http://127.0.0.1:9"], embedded=True, cache_path=cache_path)
        source = logprob_source(servers)  # the model loads when first used: nothing is contacted or loaded here
        assert isinstance(source, LocalLogprobs) and source is logprob_source(LLMConfig(cache_path=cache_path))
        assert isinstance(logprob_source(LLMConfig(endpoints=["http://127.0.0.1:9"], cache_path=cache_path)),
                          HTTPLogprobs)
    finally:
        close_logprob_sources()
