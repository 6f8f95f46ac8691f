"""The front-ends' pushes against the test Hub: the Space (a pasted token and the OAuth token of a signed-in
visitor, through the app's own `push` handler) and `hf-prefsel pd --push-to-hub` in a subprocess."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml

from hf_prefsel.errors import HfPrefselError
from shared_data import shared_path

ROOT = Path(__file__).resolve().parents[2]
RATINGS = "Tiny demo ratings (40 prompts, generated)"


@pytest.fixture(scope="module")
def space_result():
    """A real Space run: the PD tab on the generated ratings sample (no model needed)."""
    from hf_prefsel.space import data, methods

    return methods.pd(data.load_sample(RATINGS), rows=100, ratio=0.5)


@pytest.fixture(scope="module")
def app_push():
    """The `push` event handler of `spaces/app.py`, as Gradio calls it (no browser, no server)."""
    gr = pytest.importorskip("gradio")
    spec = importlib.util.spec_from_file_location("hf_prefsel_space_app", ROOT / "spaces" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    demo = app.build_demo()
    (push,) = [f.fn for f in demo.fns.values() if f.api_name == "push"]
    return gr, push


def _meta(text: str) -> dict:
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_space_push_with_a_pasted_token(hub, space_result, tmp_path):
    from hf_prefsel.space.export import push_result

    repo_id = hub.repo_id("space-pd")
    url = push_result(space_result, repo_id, hub.write_token)
    assert url.startswith(f"{hub.url}/datasets/{repo_id}/commit/")
    back = datasets.load_dataset(repo_id, split="train", token=hub.write_token, cache_dir=str(tmp_path / "c"))
    assert back.to_list() == space_result.dataset.to_list() and len(back) > 0
    repo = hub.server.repos[("datasets", repo_id)]
    assert repo.private  # the Space pushes private repos by default
    card = repo.files["README.md"].decode()
    assert _meta(card)["hf_prefsel"]["method"] == "PD" and "2508.07638" in card


def test_space_push_with_the_oauth_token(hub, app_push, space_result, tmp_path):
    gr, push = app_push
    repo_id = hub.repo_id("space-oauth")
    oauth = gr.OAuthToken(token=hub.write_token, scope="write-repos", expires_at=2_000_000_000)
    # a signed-in visitor's token wins over whatever is in the text box
    message, cleared = push(space_result, repo_id, hub.wrong_token, True, oauth_token=oauth)
    assert message.startswith(f"Pushed {len(space_result.dataset):,} rows") and cleared == ""
    assert ("datasets", repo_id) in hub.server.repos
    writers = {user for method, path, user in hub.server.requests if repo_id in path and method == "POST"}
    assert writers == {"alice"}


@pytest.mark.parametrize("which", ["wrong_token", "read_token"])
def test_space_push_refused(hub, app_push, space_result, which, tmp_path, monkeypatch):
    from hf_prefsel.space.export import push_result

    monkeypatch.chdir(tmp_path)
    gr, push = app_push
    token = getattr(hub, which)
    repo_id = hub.repo_id("space-refused")
    with pytest.raises(HfPrefselError, match="40[13]") as info:
        push_result(space_result, repo_id, token)
    assert token not in str(info.value)
    oauth = gr.OAuthToken(token=token, scope="write-repos", expires_at=2_000_000_000)
    with pytest.raises(gr.Error) as shown:
        push(space_result, repo_id, "", True, oauth_token=oauth)
    assert token not in str(shown.value) and "failed" in str(shown.value)
    assert ("datasets", repo_id) not in hub.server.repos
    assert list(tmp_path.iterdir()) == []  # the Space keeps no local copies


def _cli(hub, tmp_path, *args, token):
    env = hub.env(HF_TOKEN=token, HF_PREFSEL_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "hf_prefsel.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_pd_push_to_hub(hub, tmp_path):
    data = shared_path("preference_multiaspect", "topicalchat_usr_multiaspect.jsonl")
    repo_id = hub.repo_id("cli-pd")
    proc = _cli(hub, tmp_path, "pd", "--data", str(data), "--ratio", "0.3", "--from-ratings", "--no-progress",
                "--push-to-hub", repo_id, token=hub.write_token)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{hub.url}/datasets/{repo_id}/commit/" in proc.stdout
    back = datasets.load_dataset(repo_id, split="train", cache_dir=str(tmp_path / "fresh"))
    assert len(back) == 18 and all(pd <= 0 for pd in back["pd"])
    card = hub.server.files("dataset", repo_id)["README.md"].decode()
    meta = _meta(card)
    assert meta["hf_prefsel"]["source"] == "topicalchat_usr_multiaspect.jsonl"
    assert str(Path(data).parent) not in card and "2508.07638" in card
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("hf_prefsel-unpushed")] == []


def test_cli_pd_push_with_a_wrong_token_keeps_the_result(hub, tmp_path):
    data = shared_path("preference_multiaspect", "topicalchat_usr_multiaspect.jsonl")
    repo_id = hub.repo_id("cli-refused")
    proc = _cli(hub, tmp_path, "pd", "--data", str(data), "--ratio", "0.3", "--from-ratings", "--no-progress",
                "--push-to-hub", repo_id, token=hub.wrong_token)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and hub.wrong_token not in proc.stderr + proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "401" in last and "kept in" in last
    assert "pushed to" not in proc.stdout
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("hf_prefsel-unpushed")]
    assert str(kept) in last
    assert len(datasets.Dataset.from_parquet(str(kept / "data.parquet"))) == 18
    assert ("datasets", repo_id) not in hub.server.repos
