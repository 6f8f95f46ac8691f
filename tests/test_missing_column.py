"""A missing column's error names the setting that chose the column and, from `hf-prefsel`, that command's flag; a
column fixed by the schema keeps the generic advice. Every case goes through a public API and fails
before any model call."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

import pickle

from hf_prefsel.errors import MissingColumnError
from hf_prefsel.llm import LLMConfig

GENERIC = "Pass the right column name in the config, or rename the column with `ds.rename_column`."
DEAD = LLMConfig(endpoints=["http://127.0.0.1:9"], max_retries=0)  # never reached: the column check comes first


@pytest.fixture
def alpaca() -> Dataset:
    return Dataset.from_dict({"prompt": ["Add 2 and 2.", "Name a colour."], "output": ["4", "Red"],
                              "cluster_ids": [[0], [0]]})


def test_message_names_option_and_flag():
    err = MissingColumnError("instruction", ["prompt", "response"], option="input_column")
    assert str(err) == ("Column 'instruction' is missing from the dataset. Available columns: prompt, response. "
                        "Set `input_column` to one of them, or rename the column with `ds.rename_column`.")
    err.flag = "--input-column"  # what `hf-prefsel` adds
    assert "Set `input_column` (CLI: `--input-column`) to one of them" in str(err)
    again = pickle.loads(pickle.dumps(err))  # e.g. raised on a Ray worker
    assert str(again) == str(err) and (again.option, again.column) == ("input_column", "instruction")


def test_flags_come_from_the_command_parsers():
    from hf_prefsel.cli import tacos, tags

    flags = tacos.build_parser().parse_args(["--data", "x.jsonl", "--budget", "1"]).config_flags
    assert flags["cluster.n_clusters"] == "--clusters"  # a renamed flag, as the parser spells it
    assert flags["judge.max_chars"] == "--judge-max-chars" and flags["messages_column"] == "--messages-column"
    assert "messages_column" not in tags.build_parser().parse_args(["--data", "x.jsonl", "--budget", "1"]).config_flags


def test_tacos_scorer_names_the_judge_column(alpaca):
    from hf_prefsel.tacos import ComparativeScorer, ComparativeScorerConfig

    with pytest.raises(MissingColumnError) as info:
        ComparativeScorer(DEAD, ComparativeScorerConfig(instruction_column="instruction")).score(alpaca, progress=False)
    message = str(info.value)
    assert "Column 'instruction'" in message and "Available columns: prompt, output, cluster_ids." in message
    assert "Set `instruction_column` to one of them" in message and "CLI:" not in message  # the library has no flags
    assert GENERIC not in message


def test_tacos_config_names_the_messages_flag():
    from hf_prefsel.tacos.pipeline import TacosConfig

    with pytest.raises(MissingColumnError, match=r"Set `messages_column` to one of them"):
        TacosConfig(budget=1, messages_column="conversation").check_columns(["instruction", "output"])


def test_tags_config_names_its_fields():
    from hf_prefsel.tags.pipeline import TagsConfig

    with pytest.raises(MissingColumnError, match=r"Set `messages_column` to one of them"):
        TagsConfig(budget=1, messages_column="conversation").check_columns(["instruction"])
    with pytest.raises(MissingColumnError, match=r"Set `quality_column` to one of them"):
        TagsConfig(budget=1, quality_column="ifd").check_columns(["instruction"])


def test_open_tagger_names_its_config_field():
    from hf_prefsel.tacos import OpenTagger

    tagger = OpenTagger(DEAD, instruction_column="question")
    with pytest.raises(MissingColumnError) as info:
        tagger({"prompt": ["Add 2 and 2.", "Name a colour."]})
    assert "Column 'question'" in str(info.value) and "Set `instruction_column` to one of them" in str(info.value)


def test_normalizer_names_tags_column_without_a_flag():
    from hf_prefsel.tacos import TagNormalizer, TagNormalizerConfig

    ds = Dataset.from_dict({"labels": [["math"], ["colour"]]})
    with pytest.raises(MissingColumnError) as info:
        TagNormalizer(TagNormalizerConfig()).fit(ds)
    assert str(info.value).endswith("Available columns: labels. Set `tags_column` to one of them, or rename the "
                                    "column with `ds.rename_column`.")


def test_pd_adapter_keyword_and_schema_column():
    from hf_prefsel.pd import from_pairwise
    from hf_prefsel.pd.schema import check_pairs

    pairs = Dataset.from_dict({"prompt": ["p"], "chosen": ["a"], "rejected": ["b"]})
    with pytest.raises(MissingColumnError, match="Set `aspect_column` to one of them"):
        from_pairwise(pairs, aspect_column="label")
    with pytest.raises(MissingColumnError) as info:  # the internal pair form: no option chooses these columns
        check_pairs(pairs)
    assert str(info.value).endswith(GENERIC) and info.value.option is None


def test_cli_tag_names_the_flag(tmp_path, capsys):
    from hf_prefsel.cli.tag import main

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Question {i}?", "output": "A."}) + "\n" for i in range(3)))
    assert main(["--data", str(data), "--local-replicas", "0"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    assert "Column 'instruction' is missing" in errors[0]
    assert "Set `instruction_column` (CLI: `--instruction-column`) to one of them" in errors[0]
