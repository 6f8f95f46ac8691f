"""The Space's functions through `gradio_client`, against `python spaces/app.py` launched on 127.0.0.1.

LLM runs here talk to the fault server (a fake OpenAI-compatible endpoint given as the endpoint URL); the real
embedded model is exercised by the browser test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from hf_prefsel.space.methods import FROM_DATA
from hf_prefsel.space.models import ENDPOINT

DEMO = "Tiny demo instructions (16, generated)"
RATINGS = "Tiny demo ratings (40 prompts, generated)"


def value(update):
    """The value of a component update (dropdowns come back as `{"choices", "value", "__type__"}`)."""
    return update["value"] if isinstance(update, dict) and "__type__" in update else update


def run_tacos(client, endpoint: str, **overrides):
    params = dict(instruction="instruction", inp="input", response="output", choice=ENDPOINT, endpoint=endpoint,
                  model_name="", max_calls=200, rows=12, budget=4, clusters=3, strategy="quota", passes=1, swap=False,
                  judge_chars=300)
    params.update(overrides)
    return client.predict(**params, api_name="/run_tacos")


def test_api_lists_every_action(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/load_upload", "/load_sample", "/load_hub", "/run_tacos", "/run_tags", "/run_pd", "/run_tap", "/push"} <= names


def test_pd_on_generated_ratings(client):
    status, preview, *_ = client.predict(RATINGS, api_name="/load_sample")
    assert "40 rows" in status and "preferences" in status
    assert preview["headers"][:3] == ["id", "prompt", "responses"]
    summary, hist, per_aspect, hidden, tree, table, files = client.predict(
        rows=1000, ratio=0.25, stratify=False, pair_mode="one_per_prompt", gamma=0.9, api_name="/run_pd")
    assert "PD: kept 10 of 40 pairs" in summary
    assert "cut at PD" in hist["title"] and hist["visible"] is True
    kept_bars = [row for row in hist["value"]["data"] if row[2] == "kept"]  # label, value, series
    assert sum(r[1] for r in kept_bars) == 10
    assert hidden.get("visible") is False
    assert "<svg" in tree and "<script" not in tree
    assert len(table["data"]) == 10 and table["headers"][0] == "pd"
    pds = [row[0] for row in table["data"]]
    assert pds == sorted(pds)  # best (most negative) first
    paths = [Path(f) for f in files]
    assert {p.suffix for p in paths} == {".jsonl", ".parquet", ".md"}
    jsonl = next(p for p in paths if p.suffix == ".jsonl")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == 10 and all("pd" in r and "chosen" in r for r in rows)
    card = next(p for p in paths if p.suffix == ".md").read_text()
    assert "PD" in card and "2508.07638" in card


def test_pd_on_shared_multiaspect_upload(client, tmp_path, space_helpers):
    src = space_helpers.shared_path("preference_multiaspect", "topicalchat_usr_multiaspect.jsonl")
    path = space_helpers.write_jsonl(src, tmp_path / "topicalchat.jsonl", 60)
    status, *_ = client.predict(handle_file(str(path)), api_name="/load_upload")
    assert "60 rows" in status and "uploaded file" in status and str(tmp_path) not in status
    summary, *_ , table, files = client.predict(rows=1000, ratio=0.3, stratify=True, pair_mode="one_per_prompt",
                                                gamma=0.9, api_name="/run_pd")
    assert "PD: kept 18 of 60 pairs" in summary and "5 aspects" in summary


def test_pd_refuses_instruction_data(client):
    client.predict(DEMO, api_name="/load_sample")
    with pytest.raises(AppError, match="PD needs preference data"):
        client.predict(rows=100, ratio=0.3, stratify=False, pair_mode="one_per_prompt", gamma=0.9, api_name="/run_pd")


def test_upload_row_cap_is_reported(client, tmp_path, space_helpers):
    src = space_helpers.shared_path("instructions", "selfinstruct_seed_tasks.jsonl")  # 175 rows; app cap is 300
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    path = tmp_path / "seeds_x2.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + rows))  # 350 rows > 300
    status, preview, instruction, inp, response = client.predict(handle_file(str(path)), api_name="/load_upload")
    assert "300 rows" in status and "only the first 300 were kept" in status
    assert (value(instruction), value(inp), value(response)) == ("instruction", "input", "output")


def test_upload_size_limit_and_bad_json(client, tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_text((json.dumps({"instruction": "y" * 1000}) + "\n") * 1500)  # 1.5 MB
    with pytest.raises(AppError, match=r"accepts files up to 1 MB"):
        client.predict(handle_file(str(big)), api_name="/load_upload")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok"}\n{not json}\n')
    with pytest.raises(AppError, match=r"Line 2 of 'bad.jsonl' is not valid JSON"):
        client.predict(handle_file(str(bad)), api_name="/load_upload")


def test_csv_and_parquet_uploads(client, tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"question": [f"What is {i} + {i}?" for i in range(30)], "answer": [str(2 * i) for i in range(30)]})
    frame.to_csv(tmp_path / "qa.csv", index=False)
    frame.to_parquet(tmp_path / "qa.parquet")
    for name in ("qa.csv", "qa.parquet"):
        status, _, instruction, _, response = client.predict(handle_file(str(tmp_path / name)), api_name="/load_upload")
        assert "30 rows" in status and f"`{name}`" in status
        assert (value(instruction), value(response)) == ("question", "answer")


def test_hub_unreachable_and_bad_ids(client):
    with pytest.raises(AppError, match="cannot be reached"):
        client.predict("tatsu-lab/alpaca", "train", api_name="/load_hub")
    for bad in ("../../etc/passwd", "/etc/passwd", "a/b/c"):
        with pytest.raises(AppError, match="not a Hub dataset id"):
            client.predict(bad, "train", api_name="/load_hub")


def test_sample_names_are_not_paths(client):
    with pytest.raises(AppError):
        client.predict("../../../etc/passwd", api_name="/load_sample")


def test_tacos_on_fake_endpoint(client, fault_server, space_helpers):
    server = fault_server(responder=space_helpers.fake_replies)
    client.predict(DEMO, api_name="/load_sample")
    summary, raw_tags, canonical, clusters, tree, table, files = run_tacos(client, server.url)
    assert "TACOS: selected 4 of 12 rows" in summary
    assert "12/12 rows tagged" in summary
    assert raw_tags["title"].startswith("Top raw tags") and canonical["title"].startswith("Top canonical tags")
    assert clusters["visible"] is True and "cover" in clusters["caption"]
    assert "<svg" in tree and "<details" in tree
    assert len(table["data"]) == 4
    scores = [row[0] for row in table["data"]]
    assert scores == sorted(scores, reverse=True) and all(1 <= s <= 100 for s in scores)
    jsonl = next(Path(f) for f in files if f.endswith(".jsonl"))
    selected = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(selected) == 4 and all(r["canonical_tags"] and r["selection_reason"] for r in selected)
    card = next(Path(f) for f in files if f.endswith(".md")).read_text()
    assert "TACOS" in card and "2507.03673" in card
    # the card names the model the endpoint reported, never this machine's URL (issue 17)
    assert "fake.gguf" in card and server.url not in card and "127.0.0.1" not in card


def test_call_budget_bounds_a_run(client, fault_server, space_helpers):
    server = fault_server(responder=space_helpers.fake_replies)
    client.predict(DEMO, api_name="/load_sample")
    summary, *_ = run_tacos(client, server.url, max_calls=10, rows=16)
    assert server.generation_requests <= 10
    assert "the call budget was spent" in summary


def test_endpoint_url_is_validated(client):
    client.predict(DEMO, api_name="/load_sample")
    for url in ("file:///etc/passwd", "ftp://example.com", "http://user:secret@example.com"):
        with pytest.raises(AppError) as err:
            run_tacos(client, url)
        assert "secret" not in str(err.value)


def test_run_needs_data_and_push_needs_result(client):
    with pytest.raises(AppError, match="Run a method first"):
        client.predict("me/ds", "", True, api_name="/push")


def test_push_errors_never_show_the_token(app, client):
    client.predict(RATINGS, api_name="/load_sample")
    client.predict(rows=100, ratio=0.5, stratify=False, pair_mode="one_per_prompt", gamma=0.9, api_name="/run_pd")
    with pytest.raises(AppError, match="paste a write token"):
        client.predict("me/pd-demo", "", True, api_name="/push")
    with pytest.raises(AppError, match="not a dataset repo id"):
        client.predict("../x", "hf_" + "a" * 34, True, api_name="/push")
    token = "hf_" + "Q7x" * 12
    with pytest.raises(AppError) as err:  # offline: the Hub cannot be reached
        client.predict("me/pd-demo", token, True, api_name="/push")
    assert token not in str(err.value)
    assert token not in app.log_text()


def test_tags_on_fake_endpoint(client, fault_server, space_helpers):
    server = fault_server(responder=space_helpers.fake_replies)
    client.predict(DEMO, api_name="/load_sample")
    summary, concepts, branches, info, tree, table, files = client.predict(
        instruction="instruction", inp="input", response="output", choice=ENDPOINT, endpoint=server.url, model_name="",
        max_calls=100, rows=12, budget=4, check_rounds=0, api_name="/run_tags")
    assert "TAGS: selected 4 of 12 rows" in summary and "12/12 rows tagged" in summary
    assert concepts["title"] == "Top knowledge concepts" and branches["visible"] is True
    labels = [row[0] for row in info["value"]["data"]]
    assert labels == ["TAGS selection", "random pick, same size"]
    assert "Knowledge tree" in tree and "<svg" in tree
    assert [row[0] for row in table["data"]] == [1, 2, 3, 4]  # pick order
    card = next(Path(f) for f in files if f.endswith(".md")).read_text()
    assert "TAGS" in card and "2601.13995" in card


def test_tap_on_fake_endpoint(client, fault_server, space_helpers):
    server = fault_server(responder=space_helpers.fake_replies)
    summary, per_leaf, margins, *_rest, tree, table, files = client.predict(
        instruction="instruction", choice=ENDPOINT, endpoint=server.url, model_name="", max_calls=90,
        taxonomy_source="default", prompts=4, responses_per_prompt=2, language="en", api_name="/run_tap")
    assert "TaP:" in summary and "from 4 prompts" in summary
    assert per_leaf["title"].startswith("Prompts per taxonomy leaf")
    assert "margin" in margins["title"]
    assert "Taxonomy general-assistant" in tree
    pairs = [json.loads(line) for line in next(Path(f) for f in files if f.endswith(".jsonl")).read_text().splitlines()]
    assert len(pairs) == len(table["data"]) and all(p["chosen"] != p["rejected"] for p in pairs)
    assert server.generation_requests <= 90


def test_tap_from_data_labels_and_bad_taxonomy(client, fault_server, space_helpers):
    server = fault_server(responder=space_helpers.fake_replies)
    client.predict(DEMO, api_name="/load_sample")  # no label column
    params = dict(instruction="instruction", choice=ENDPOINT, endpoint=server.url, model_name="", max_calls=60,
                  prompts=3, responses_per_prompt=2, language="en")
    with pytest.raises(AppError, match="no label column"):
        client.predict(taxonomy_source=FROM_DATA, **params, api_name="/run_tap")
    with pytest.raises(AppError):
        client.predict(taxonomy_source="/etc/passwd", **params, api_name="/run_tap")


def test_server_paths_cannot_be_passed_as_uploads(app):
    """A raw API call naming a server file instead of an upload is refused by Gradio before our code runs."""
    import httpx

    start = httpx.post(f"{app.url}gradio_api/call/load_upload",
                       json={"data": [{"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}}]}, timeout=30)
    assert start.status_code == 200
    event = start.json()["event_id"]
    stream = httpx.get(f"{app.url}gradio_api/call/load_upload/{event}", timeout=60).text
    assert "event: error" in stream
    assert open("/etc/hostname").read().strip() not in stream.replace("/etc/hostname", "")
