"""Fixtures for the hub tests: a Hub-compatible test server reached through the real clients, a small Artifact
subclass, and a few real LIMA rows (read at test time).

`huggingface_hub` and `datasets` read `HF_ENDPOINT` and `HF_HUB_DISABLE_XET` when they are imported, so both are set
here before anything imports them, on a port picked now for the session's server. When another folder's conftest
imported them first (the whole suite), the `hub` fixture patches the module-level values each library reads at call
time, so the hub tests pass in any order; subprocesses get the variables in their environment.
"""

from __future__ import annotations

import os
import socket


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HUB_PORT = _free_port()
HUB_URL = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_ENDPOINT"] = HUB_URL
os.environ["HF_HUB_DISABLE_XET"] = "1"

import json  # noqa: E402  (the variables above must be set before huggingface_hub is imported)
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hf_prefsel.hub import Artifact  # noqa: E402
from hub.hub_server import HubServer  # noqa: E402

WRITE_TOKEN = "hf_" + "WriteTokenOfAlice" * 2
READ_TOKEN = "hf_" + "ReadOnlyTokenOfAlice" * 2
BOB_TOKEN = "hf_" + "WriteTokenOfBob00" * 2
WRONG_TOKEN = "hf_" + "NoSuchTokenAnywhere" * 2

LIMA = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "instructions", "lima_train_1k.jsonl")
)

class ToyVocabulary(Artifact):
    """A tag vocabulary stand-in: JSON content plus arrays of several dtypes and shapes."""

    artifact_type = "toy_vocabulary"
    format_version = 2

    def __init__(self, tags: list[str], counts: dict[str, int], arrays: dict[str, np.ndarray] | None = None):
        self.tags = tags
        self.counts = counts
        self.arrays = arrays or {}

    def to_dict(self) -> dict:
        return {"tags": self.tags, "counts": self.counts}

    def tensors(self) -> dict[str, np.ndarray]:
        return dict(self.arrays)

    @classmethod
    def from_dict(cls, data: dict, tensors: dict[str, np.ndarray]) -> "ToyVocabulary":
        return cls(data["tags"], data["counts"], tensors)

    def card_body(self) -> str:
        top = sorted(self.counts.items(), key=lambda kv: -kv[1])[:2]
        return f"**{len(self.tags)} tags.** Top: " + ", ".join(f"{t} ({c})" for t, c in top)


class ToyTree(Artifact):
    """A second artifact type, to check that types are not confused."""

    artifact_type = "toy_tree"

    def __init__(self, children: dict[str, list[str]]):
        self.children = children

    def to_dict(self) -> dict:
        return {"children": self.children}

    @classmethod
    def from_dict(cls, data: dict, tensors: dict[str, np.ndarray]) -> "ToyTree":
        return cls(data["children"])


@pytest.fixture
def toy() -> ToyVocabulary:
    rng = np.random.default_rng(0)
    return ToyVocabulary(
        tags=["math", "coding", "écriture"],
        counts={"math": 5, "coding": 9, "écriture": 1},
        arrays={
            "embeddings": rng.standard_normal((3, 8)).astype(np.float32),
            "ids": np.array([3, 1, 2], dtype=np.int64),
            "mask": np.array([[True, False], [False, True]]),
            "half": rng.standard_normal((2, 3, 4)).astype(np.float16),
            "transposed": np.arange(12, dtype=np.int32).reshape(3, 4).T,  # not C-contiguous
        },
    )


@pytest.fixture
def toy_cls() -> type[ToyVocabulary]:
    return ToyVocabulary


@pytest.fixture
def tree_cls() -> type[ToyTree]:
    return ToyTree


def read_lima(n: int) -> list[dict[str, Any]]:
    """The first `n` rows of the shared LIMA sample; skipped if the shared data is absent (fails in CI)."""
    if not os.path.exists(LIMA):
        if os.environ.get("CI"):
            pytest.fail(f"Test data {LIMA} is missing.")
        pytest.skip(f"Test data {LIMA} is missing.")
    rows = []
    with open(LIMA, encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if len(rows) == n:
                break
    return rows


@pytest.fixture
def lima_rows() -> list[dict[str, Any]]:
    return read_lima(12)


# ---------------------------------------------------------------------- the Hub test server


class Hub:
    """What a test needs of the test server: its URL, tokens, fresh repo ids and an environment for subprocesses."""

    write_token, read_token, bob_token, wrong_token = WRITE_TOKEN, READ_TOKEN, BOB_TOKEN, WRONG_TOKEN

    def __init__(self, server: HubServer, home: str):
        self.server = server
        self.url = server.url
        self.home = home

    def repo_id(self, name: str = "repo", user: str = "alice") -> str:
        """A repo id no other test uses (the server lives for the whole session)."""
        return f"{user}/{name}-{uuid.uuid4().hex[:8]}"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a subprocess talking to this server, with no token of this machine and no offline mode."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        env.update(HF_ENDPOINT=self.url, HF_HUB_DISABLE_XET="1", HF_HOME=self.home,
                   HF_HUB_DISABLE_TELEMETRY="1", **extra)
        return env


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    tokens = {WRITE_TOKEN: ("alice", "write"), READ_TOKEN: ("alice", "read"), BOB_TOKEN: ("bob", "write")}
    try:
        server = HubServer(tokens, port=HUB_PORT).start()
    except OSError:  # the port was taken meanwhile: any port works, the `hub` fixture points the clients at it
        server = HubServer(tokens).start()
    yield server
    server.stop()


@pytest.fixture
def hub(hub_server, tmp_path, monkeypatch) -> Hub:
    """The session's test server, with huggingface_hub and datasets pointed at it for this test.

    Patches what each library reads at call time (both keep module-level copies of the endpoint), so this works
    even when they were imported before this folder's conftest set the environment.
    """
    import datasets.config
    import huggingface_hub.constants as constants

    url = hub_server.url
    home = tmp_path / "hf_home"
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))  # never this machine's saved token
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", url)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False, raising=False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    return Hub(hub_server, str(home))
