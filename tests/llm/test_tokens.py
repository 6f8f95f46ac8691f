"""Which bearer token goes where: this machine's Hugging Face token reaches Hugging Face hosts only."""

from __future__ import annotations

import argparse

import pytest

from hf_prefsel.errors import ConfigError
from hf_prefsel.llm import LLMConfig
from hf_prefsel.llm.client import LLMClient
from hf_prefsel.llm.config import bearer_token, is_hugging_face_url
from hf_prefsel.tacos.tagger import IntentTags, tagging_prompt

PROMPT = tagging_prompt(explanations=True)
MACHINE = "hf_machine_token_that_must_stay_home"


@pytest.fixture
def machine_token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", MACHINE)
    return MACHINE


@pytest.mark.parametrize("url, expected", [
    ("https://abc123.us-east-1.aws.endpoints.huggingface.cloud", True),
    ("https://router.huggingface.co/v1", True),
    ("https://huggingface.co", True),
    ("https://someone-demo.hf.space", True),
    ("https://huggingface.co.attacker.example", False),
    ("https://attacker.example/huggingface.co", False),
    ("https://myhuggingface.co", False),
    ("http://127.0.0.1:8080", False),
])
def test_hugging_face_hosts_are_matched_on_the_host_name(url, expected):
    assert is_hugging_face_url(url) is expected


def test_default_token_only_for_hugging_face_endpoints(machine_token):
    assert bearer_token(LLMConfig(endpoints=["https://x.endpoints.huggingface.cloud"])) == machine_token
    assert bearer_token(LLMConfig(endpoints=["http://127.0.0.1:8080"])) is None
    # one replica elsewhere: the same token would go to all of them, so none gets it
    assert bearer_token(LLMConfig(endpoints=["https://x.endpoints.huggingface.cloud", "http://10.0.0.2:8080"])) is None
    assert bearer_token(LLMConfig(endpoints=["https://x.endpoints.huggingface.cloud"], token=False)) is None
    assert bearer_token(LLMConfig(endpoints=["http://127.0.0.1:8080"], token="sk-mine")) == "sk-mine"
    with pytest.raises(ConfigError, match="token"):
        LLMConfig(endpoints=["http://127.0.0.1:8080"], token=True)


@pytest.mark.parametrize("tgi", [False, True], ids=["llama-cpp-python", "tgi"])
@pytest.mark.parametrize("route", ["chat", "completion"])
def test_third_party_server_never_sees_the_machine_token(fault_server, machine_token, monkeypatch, route, tgi):
    # the chat route (and TGI's /generate) go through huggingface_hub's AsyncInferenceClient, which by itself
    # attaches the machine's token to any base_url; llama-cpp-python's completion route is a plain httpx POST
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # offline mode would bypass the hub client
    server = fault_server(tgi=tgi)
    client = LLMClient(server.config(route=route, constrain="never"))
    results = client.run_structured([PROMPT.messages("Plan a trip to Kyoto.")], IntentTags)
    assert results[0].ok, results[0].error
    assert len(server.authorizations) >= 2, "no request reached the server"
    assert not any(MACHINE in (header or "") for header in server.authorizations), server.authorizations


def test_explicit_token_is_sent_on_every_request(fault_server, machine_token, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    server = fault_server()
    client = LLMClient(server.config(route="chat", constrain="never", token="sk-mine"))
    assert client.run_structured([PROMPT.messages("Plan a trip to Kyoto.")], IntentTags)[0].ok
    assert server.authorizations and set(server.authorizations) == {"Bearer sk-mine"}


def test_space_never_sends_its_token_to_a_visitors_endpoint(machine_token, tmp_path):
    from hf_prefsel.space.models import ENDPOINT, ModelProvider

    config = ModelProvider(cache_path=str(tmp_path / "c.sqlite")).config(
        ENDPOINT, endpoint="https://visitor.endpoints.huggingface.cloud")
    assert config.token is False and bearer_token(config) is None


def test_cli_token_env(monkeypatch):
    from hf_prefsel.cli.common import endpoint_token

    assert endpoint_token(argparse.Namespace(token_env=None)) is None
    monkeypatch.setenv("MY_ENDPOINT_KEY", "sk-cli")
    assert endpoint_token(argparse.Namespace(token_env="MY_ENDPOINT_KEY")) == "sk-cli"
    monkeypatch.delenv("MY_ENDPOINT_KEY")
    with pytest.raises(ConfigError, match="MY_ENDPOINT_KEY"):
        endpoint_token(argparse.Namespace(token_env="MY_ENDPOINT_KEY"))
