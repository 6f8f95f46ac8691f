"""The same small job through the library, the CLI and the Space logic gives the same rows and the same card
parameters, for every method (issue 13): the front-ends are thin over one run-unit each and cannot drift.

TACOS, TAGS and TaP run against a fake endpoint (deterministic replies); PD needs no model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "hf-prefsel"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT))


def card_parameters(data_path: Path) -> dict:
    """The `parameters` the card next to a saved dataset records (`x.jsonl` → `x.README.md`)."""
    card = data_path.with_name(data_path.stem + ".README.md") if data_path.suffix else data_path / "README.md"
    text = card.read_text(encoding="utf-8")
    meta = yaml.safe_load(text.split("---")[1])
    return meta["hf_prefsel"]["parameters"]


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def instructions(tmp_path, space_helpers) -> tuple[Path, list[dict]]:
    src = space_helpers.shared_path("instructions", "selfinstruct_seed_tasks.jsonl")
    path = space_helpers.write_jsonl(src, tmp_path / "seeds.jsonl", 12, keys=("id", "instruction", "input", "output"))
    rows = rows_of(path)
    for i, row in enumerate(rows):  # ids as strings, as the Space makes them
        row["id"] = str(row.get("id", i))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, rows


def _space_data(rows: list[dict], source: str):
    from hf_prefsel.space.data import LoadedData

    return LoadedData(rows=rows, source=source)


COLUMNS = {"instruction": "instruction", "input": "input", "response": "output"}


def test_tacos_agrees(tmp_path, instructions, fault_server, space_helpers):
    from datasets import Dataset

    from hf_prefsel.hub import save_dataset
    from hf_prefsel.llm import LLMConfig
    from hf_prefsel.options import build_config
    from hf_prefsel.space import methods
    from hf_prefsel.tacos.pipeline import TacosConfig, TacosPipeline

    path, rows = instructions
    server = fault_server(responder=space_helpers.fake_replies)
    cache = str(tmp_path / "cache.sqlite")
    llm = LLMConfig(endpoints=[server.url], cache_path=cache)

    config = build_config(TacosConfig, {"budget": 4, "cluster.n_clusters": 3, "judge.swap": True})
    lib = TacosPipeline(llm, config).run(Dataset.from_list(rows), progress=False, source=path.name)
    lib.save(tmp_path / "lib.jsonl")

    proc = cli("tacos", "--data", str(path), "--budget", "4", "--clusters", "3", "--swap", "--endpoint", server.url,
               "--cache-path", cache, "--output", str(tmp_path / "cli.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]

    space = methods.tacos(_space_data(rows, path.name), COLUMNS, llm, rows=12, budget=4, clusters=3, swap=True)
    save_dataset(space.dataset, tmp_path / "space.jsonl", space.provenance)

    ids = [[r["id"] for r in rows_of(tmp_path / f"{name}.jsonl")] for name in ("lib", "cli", "space")]
    assert len(ids[0]) == 4 and ids[0] == ids[1] == ids[2]
    scores = [[r["score"] for r in rows_of(tmp_path / f"{name}.jsonl")] for name in ("lib", "cli", "space")]
    assert scores[0] == scores[1] == scores[2]
    params = [card_parameters(tmp_path / f"{name}.jsonl") for name in ("lib", "cli", "space")]
    assert params[0] == params[1] == params[2]
    assert params[0]["judge_max_chars"] == 1200  # the library's default everywhere


def test_tags_agrees(tmp_path, instructions, fault_server, space_helpers):
    from datasets import Dataset

    from hf_prefsel.hub import save_dataset
    from hf_prefsel.llm import LLMConfig
    from hf_prefsel.space import methods
    from hf_prefsel.tags.pipeline import TagsConfig, TagsPipeline

    path, rows = instructions
    server = fault_server(responder=space_helpers.fake_replies)
    cache = str(tmp_path / "cache.sqlite")
    llm = LLMConfig(endpoints=[server.url], cache_path=cache)

    lib = TagsPipeline(llm, TagsConfig(budget=4)).run(Dataset.from_list(rows), progress=False, source=path.name)
    lib.save(tmp_path / "lib.jsonl")
    proc = cli("tags", "--data", str(path), "--budget", "4", "--endpoint", server.url, "--cache-path", cache,
               "--output", str(tmp_path / "cli.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    space = methods.tags(_space_data(rows, path.name), COLUMNS, llm, rows=12, budget=4)
    save_dataset(space.dataset, tmp_path / "space.jsonl", space.provenance)

    ids = [[r["id"] for r in rows_of(tmp_path / f"{name}.jsonl")] for name in ("lib", "cli", "space")]
    assert 1 <= len(ids[0]) <= 4 and ids[0] == ids[1] == ids[2]
    params = [card_parameters(tmp_path / f"{name}.jsonl") for name in ("lib", "cli", "space")]
    assert params[0] == params[1] == params[2]


def test_pd_agrees(tmp_path, space_helpers):
    from hf_prefsel.hub import save_dataset
    from hf_prefsel.pd.pipeline import PDPipeline, PDPipelineConfig
    from hf_prefsel.space import methods

    src = space_helpers.shared_path("preference_multiaspect", "sf_data2text_multiaspect.jsonl")
    path = space_helpers.write_jsonl(src, tmp_path / "sf.jsonl", 40)
    rows = rows_of(path)

    lib = PDPipeline(PDPipelineConfig(ratio=0.3)).run(rows, progress=False, source=path.name)
    lib.save(tmp_path / "lib.jsonl")
    proc = cli("pd", "--data", str(path), "--ratio", "0.3", "--no-progress", "--output", str(tmp_path / "cli.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    space = methods.pd(_space_data(rows, path.name), rows=40, ratio=0.3)
    save_dataset(space.dataset, tmp_path / "space.jsonl", space.provenance)

    ids = [[r["pair_id"] for r in rows_of(tmp_path / f"{name}.jsonl")] for name in ("lib", "cli", "space")]
    assert len(ids[0]) > 0 and ids[0] == ids[1] == ids[2]
    params = [card_parameters(tmp_path / f"{name}.jsonl") for name in ("lib", "cli", "space")]
    assert params[0] == params[1] == params[2]


def test_tap_agrees(tmp_path, fault_server, space_helpers):
    from hf_prefsel.hub import save_dataset
    from hf_prefsel.llm import LLMConfig
    from hf_prefsel.space import methods
    from hf_prefsel.space.tap_run import space_tap_config
    from hf_prefsel.tap import Taxonomy, TaPPipeline

    server = fault_server(responder=space_helpers.fake_replies)
    cache = str(tmp_path / "cache.sqlite")
    llm = LLMConfig(endpoints=[server.url], cache_path=cache)
    config = space_tap_config(prompts=3, responses_per_prompt=2, language="en")

    lib = TaPPipeline(llm, config).run(Taxonomy.load("default"), progress=False)
    save_dataset(lib.preferences, tmp_path / "lib.jsonl", lib.provenance())
    proc = cli("tap", "--taxonomy", "default", "--language", "en", "--per-leaf", "1", "--max-leaves", "3",
               "--responses", "2", "--axes", "none", "--max-rounds", "2", "--prompt-max-tokens", "200",
               "--response-max-tokens", "160", "--judge-max-tokens", "120", "--endpoint", server.url,
               "--cache-path", cache, "--output", str(tmp_path / "cli"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    space = methods.tap(None, None, llm, taxonomy="default", prompts=3, responses_per_prompt=2, language="en")
    save_dataset(space.dataset, tmp_path / "space.jsonl", space.provenance)

    lib_rows, space_rows = rows_of(tmp_path / "lib.jsonl"), rows_of(tmp_path / "space.jsonl")
    cli_rows = rows_of(tmp_path / "cli" / "preferences.jsonl")
    key = [[(r["prompt"], r["chosen"], r["rejected"]) for r in rs] for rs in (lib_rows, cli_rows, space_rows)]
    assert key[0] == key[1] == key[2]
    params = [card_parameters(tmp_path / "lib.jsonl"), card_parameters(tmp_path / "cli" / "preferences.jsonl"),
              card_parameters(tmp_path / "space.jsonl")]
    assert params[0] == params[1] == params[2]
