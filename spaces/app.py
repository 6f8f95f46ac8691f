"""hf_prefsel demo Space: load instruction or preference data, run TACOS, TAGS, PD or TaP on it, look at the
result, download it or push it to the Hub with its dataset card.

Run locally with `python spaces/app.py` (serves on http://127.0.0.1:7860; `--port`, `--host` to change). On a
Hugging Face Space the same file is the `app_file`. The embedded Gemma 3 270M starts on the first run that needs
it and stops when the app exits.
"""

import argparse
import atexit
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
try:
    import hf_prefsel  # noqa: F401  (installed, or vendored next to this file on a Space)
except ImportError:  # a repository checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parent))

import gradio as gr

from hf_prefsel.errors import HfPrefselError
from hf_prefsel.options import option
from hf_prefsel.pd.pipeline import PD, PDPipelineConfig
from hf_prefsel.tacos.pipeline import TACOS, TacosConfig
from hf_prefsel.space import data as space_data
from hf_prefsel.space import methods
from hf_prefsel.space.export import push_result, write_downloads
from hf_prefsel.space.limits import SpaceLimits
from hf_prefsel.space.models import EMBEDDED, ENDPOINT, MODEL_CHOICES, ModelProvider
from hf_prefsel.space.runs import RunResult
from hf_prefsel.viz import Chart, empty_html

logger = logging.getLogger("hf_prefsel.space")

SAMPLE_ROOT = Path(os.environ.get("HF_PREFSEL_SAMPLE_DATA") or HERE.parent.parent / "shared" / "data")
ON_SPACES = bool(os.environ.get("SPACE_ID"))

INTRO = """
# hf_prefsel — pick the training data worth keeping
Load instruction or preference data, choose a method, and see what it keeps and why.
**1.** Load data (a small demo set is already loaded) → **2.** pick the model → **3.** open a method tab and press *Run* →
**4.** read the charts, the tree and the table, then download the result or push it to the Hub with its dataset card.

| method | input | what it does | model calls |
|---|---|---|---|
| **TACOS** | instructions + responses | open intent tags → normalized tags → tag clusters → pairwise judging inside clusters → top rows per cluster | ≈ 1 per row + ½ per row |
| **TAGS** | instructions | knowledge concepts → knowledge tree → rows that add the most tree information | ≈ 1 per row |
| **PD** | prompts with per-aspect ratings | preference divergence across aspects; keeps the pairs every aspect agrees on | none (uses the ratings) |
| **TaP** | a shipped taxonomy, or the labels of your data | prompts per taxonomy leaf → responses → fine-grained judging → preference pairs | ≈ 1 + 2 per response, per prompt |
"""


# ------------------------------------------------------------------------------------------------ helpers


def tacos_opt(path: str) -> Any:
    """A TACOS option's default and help, from `TacosConfig` (the CLI reads the same)."""
    return option(TacosConfig, path)


def pd_opt(path: str) -> Any:
    """A PD option's default and help, from `PDPipelineConfig`."""
    return option(PDPipelineConfig, path)


def _fail(exc: BaseException) -> gr.Error:
    """A message for the user; unexpected errors are logged with their traceback (never with a token)."""
    if isinstance(exc, (HfPrefselError, ValueError, KeyError)):
        return gr.Error(str(exc).strip("'\""))
    logger.exception("Unexpected error in a Space request")
    return gr.Error(f"Unexpected error ({type(exc).__name__}): {str(exc)[:300]}")


def _plot_update(chart: Chart | None) -> Any:
    if chart is None:
        return gr.BarPlot(value=None, visible=False)
    return gr.BarPlot(
        value=chart.frame, x="label", y="value", color="series", title=chart.title, x_title=chart.x_title or None,
        y_title=chart.y_title or None, caption=chart.caption or None, sort=chart.order, color_map=chart.colors,
        visible=True, x_label_angle=-35 if len(chart.order or []) > 6 else 0,
    )


def _data_outputs(loaded: space_data.LoadedData) -> tuple:
    guess = space_data.guess_columns(loaded)
    text_cols = space_data.text_columns(loaded) or loaded.columns
    optional = ["", *text_cols]
    return (
        loaded,
        loaded.message(),
        space_data.preview_frame(loaded),
        gr.Dropdown(choices=text_cols, value=guess["instruction"]),
        gr.Dropdown(choices=optional, value=guess["input"] or ""),
        gr.Dropdown(choices=optional, value=guess["response"] or ""),
    )


# ------------------------------------------------------------------------------------------------ the app


def build_demo(limits: SpaceLimits | None = None, models: ModelProvider | None = None, sample_root: Path | None = None) -> gr.Blocks:
    """The Blocks app; `limits`, `models` and `sample_root` are injectable for tests."""
    limits = limits or SpaceLimits.from_env()
    models = models or ModelProvider()
    sample_root = sample_root or SAMPLE_ROOT
    samples = space_data.available_samples(sample_root)
    sample_names = [s.name for s in samples]

    def load_upload(file: str | None) -> tuple:
        if not file:
            raise gr.Error("Choose a .jsonl, .json, .csv or .parquet file to upload.")
        try:
            return _data_outputs(space_data.read_upload(file, limits, display_name=Path(file).name))
        except Exception as exc:
            raise _fail(exc) from None

    def load_sample(name: str) -> tuple:
        try:
            return _data_outputs(space_data.load_sample(name, sample_root, limits))
        except Exception as exc:
            raise _fail(exc) from None

    def load_hub(repo_id: str, split: str) -> tuple:
        try:
            return _data_outputs(space_data.load_hub_dataset(repo_id, split or "train", limits))
        except Exception as exc:
            raise _fail(exc) from None

    downloads = tempfile.mkdtemp(prefix="hf_prefsel_space_")
    atexit.register(shutil.rmtree, downloads, True)

    def finish(result: RunResult) -> tuple:
        logger.info("%s run: %d output rows in %.1f s", result.method, len(result.dataset), result.seconds)
        files = write_downloads(result, downloads)
        charts = list(result.charts[:3]) + [None] * (3 - len(result.charts[:3]))
        return (result, result.summary, *(_plot_update(c) for c in charts),
                result.tree_html or empty_html("This method has no tree view."), result.table, files)

    def need_data(loaded: space_data.LoadedData | None) -> space_data.LoadedData:
        if loaded is None:
            raise gr.Error("Load some data first (section 1).")
        return loaded

    def columns_of(loaded: space_data.LoadedData, instruction: str, inp: str, response: str) -> dict[str, str | None]:
        for name in (instruction, inp, response):
            if name and name not in loaded.columns:
                raise gr.Error(f"The loaded data has no column {name!r}.")
        return {"instruction": instruction or None, "input": inp or None, "response": response or None}

    def model_config(choice: str, endpoint: str, model_name: str, max_calls: float, progress: gr.Progress) -> Any:
        calls = max(1, min(int(max_calls), limits.max_calls))
        return models.config(choice, endpoint=endpoint, model=model_name, max_calls=calls,
                             notify=lambda m: progress(0.01, desc=m))

    def run_tacos(loaded, instruction, inp, response, choice, endpoint, model_name, max_calls,
                  rows, budget, clusters, strategy, passes, swap, judge_chars, progress=gr.Progress()) -> tuple:
        loaded = need_data(loaded)
        try:
            llm = model_config(choice, endpoint, model_name, max_calls, progress)
            result = methods.tacos(loaded, columns_of(loaded, instruction, inp, response), llm,
                                   rows=min(int(rows), limits.max_llm_rows), budget=int(budget), clusters=int(clusters),
                                   strategy=strategy, passes=int(passes), swap=bool(swap), judge_max_chars=int(judge_chars),
                                   table_rows=limits.table_rows, progress=lambda f, m: progress(f, desc=m))
            return finish(result)
        except gr.Error:
            raise
        except Exception as exc:
            raise _fail(exc) from None

    def run_tags(loaded, instruction, inp, response, choice, endpoint, model_name, max_calls,
                 rows, budget, check_rounds, progress=gr.Progress()) -> tuple:
        loaded = need_data(loaded)
        try:
            llm = model_config(choice, endpoint, model_name, max_calls, progress)
            result = methods.tags(loaded, columns_of(loaded, instruction, inp, response), llm,
                                  rows=min(int(rows), limits.max_llm_rows), budget=int(budget),
                                  check_rounds=int(check_rounds), table_rows=limits.table_rows,
                                  progress=lambda f, m: progress(f, desc=m))
            return finish(result)
        except gr.Error:
            raise
        except Exception as exc:
            raise _fail(exc) from None

    def run_pd(loaded, rows, ratio, stratify, pair_mode, gamma, progress=gr.Progress()) -> tuple:
        loaded = need_data(loaded)
        try:
            result = methods.pd(loaded, ratio=float(ratio), rows=min(int(rows), limits.max_pd_rows),
                                stratify_by_aspect=bool(stratify), pair_mode=pair_mode, gamma=float(gamma),
                                table_rows=limits.table_rows, progress=lambda f, m: progress(f, desc=m))
            return finish(result)
        except gr.Error:
            raise
        except Exception as exc:
            raise _fail(exc) from None

    def run_tap(loaded, instruction, choice, endpoint, model_name, max_calls, taxonomy_source, prompts,
                responses_per_prompt, language, progress=gr.Progress()) -> tuple:
        try:
            llm = model_config(choice, endpoint, model_name, max_calls, progress)
            result = methods.tap(loaded, instruction or None, llm, taxonomy=taxonomy_source,
                                 prompts=min(int(prompts), limits.max_tap_prompts),
                                 responses_per_prompt=int(responses_per_prompt), language=language,
                                 table_rows=limits.table_rows,
                                 progress=lambda f, m: progress(f, desc=m))
            return finish(result)
        except gr.Error:
            raise
        except Exception as exc:
            raise _fail(exc) from None

    def push(result: RunResult | None, repo_id: str, token_text: str, private: bool,
             oauth_token: gr.OAuthToken | None = None) -> tuple:
        if result is None:
            raise gr.Error("Run a method first; its result is what gets pushed.")
        token = oauth_token.token if oauth_token is not None else (token_text or None)
        try:
            url = push_result(result, repo_id, token, private=bool(private))
        except Exception as exc:
            raise _fail(exc) from None
        return f"Pushed {len(result.dataset):,} rows with the dataset card: {url}", ""

    with gr.Blocks(title="hf_prefsel: select instruction & preference data", delete_cache=(3600, 7200)) as demo:
        loaded_state = gr.State(None)
        result_state = gr.State(None)
        gr.Markdown(INTRO)

        with gr.Accordion("1. Data", open=True):
            with gr.Tabs():
                with gr.Tab("Sample sets"):
                    with gr.Row():
                        sample_box = gr.Dropdown(sample_names, value=sample_names[0], label="Sample set", scale=4,
                                                 elem_id="sample-set")
                        sample_btn = gr.Button("Load sample", scale=1, elem_id="load-sample")
                    if len(samples) <= 2:
                        gr.Markdown("_Only the generated demo sets are available here (the shared data folder is absent)._")
                with gr.Tab("Upload a file"):
                    upload = gr.File(label=f"JSONL, JSON, CSV or Parquet (up to {limits.max_upload_mb:g} MB; the first "
                                           f"{limits.max_rows:,} rows are used)",
                                     file_types=list(space_data.UPLOAD_TYPES), type="filepath", elem_id="upload")
                with gr.Tab("Hub dataset"):
                    with gr.Row():
                        hub_id = gr.Textbox(label="Dataset id", placeholder="owner/name, e.g. tatsu-lab/alpaca", scale=3)
                        hub_split = gr.Textbox(label="Split", value="train", scale=1)
                        hub_btn = gr.Button("Load from the Hub", scale=1)
            data_status = gr.Markdown("Loading the demo set...", elem_id="data-status")
            with gr.Row():
                col_instruction = gr.Dropdown(label="Instruction column", allow_custom_value=True, elem_id="col-instruction")
                col_input = gr.Dropdown(label="Input column (optional)", allow_custom_value=True)
                col_response = gr.Dropdown(label="Response column", allow_custom_value=True)
            preview = gr.Dataframe(label="First rows", interactive=False, max_height=260, wrap=True, elem_id="preview")

        with gr.Accordion("2. Model", open=False):
            model_choice = gr.Radio(list(MODEL_CHOICES), value=EMBEDDED, label="Model for tagging, judging and generation")
            with gr.Row(visible=False) as endpoint_row:
                endpoint_url = gr.Textbox(label="Endpoint base URL", placeholder="https://xyz.endpoints.huggingface.cloud")
                endpoint_model = gr.Textbox(label="Model name (vLLM/OpenAI servers)", placeholder="optional")
            max_calls = gr.Slider(10, limits.max_calls, value=min(400, limits.max_calls), step=10,
                                  label="Call budget: LLM calls one run may make (cached replies are free)")
            gr.Markdown("The embedded model is a 270M-parameter *base* model on a shared CPU: about 2-5 s per tagged row "
                        "and 10-20 s per judged pair. Good for trying the pipeline, not for final data.")
        model_choice.change(lambda c: gr.Row(visible=c == ENDPOINT), model_choice, endpoint_row, api_name=False)

        gr.Markdown("## 3. Method")
        llm_inputs = [model_choice, endpoint_url, endpoint_model, max_calls]
        with gr.Tabs():
            with gr.Tab("TACOS", elem_id="tab-tacos"):
                gr.Markdown("Open intent tagging, tag normalization and clustering, then comparative scoring of "
                            f"pairs within a cluster (He et al., arXiv {TACOS.arxiv}).")
                with gr.Row():
                    tacos_rows = gr.Slider(4, limits.max_llm_rows, value=20, step=1, label="Rows to use (the first N)", elem_id="tacos-rows")
                    tacos_budget = gr.Number(value=6, precision=0, minimum=1, label="Rows to select (budget)", elem_id="tacos-budget")
                    tacos_k = gr.Slider(2, 50, value=6, step=1, label="Tag clusters K")
                with gr.Row():
                    tacos_strategy = gr.Radio(list(tacos_opt("strategy").choices), value=tacos_opt("strategy").default,
                                              label="Selection", info=tacos_opt("strategy").help)
                    tacos_passes = gr.Slider(1, 3, value=tacos_opt("judge.passes").default, step=1,
                                             label="Comparisons per row", info=tacos_opt("judge.passes").help)
                    tacos_swap = gr.Checkbox(tacos_opt("judge.swap").default, label="Judge both orders",
                                             info=tacos_opt("judge.swap").help)
                    tacos_chars = gr.Slider(200, 2000, value=tacos_opt("judge.max_chars").default, step=50,
                                            label="Characters of each text shown to the judge")
                tacos_btn = gr.Button("Run TACOS", variant="primary", elem_id="run-tacos")
            with gr.Tab("TAGS", elem_id="tab-tags"):
                gr.Markdown("Knowledge-concept tagging, a knowledge tree over the concepts, and a sampler that picks the "
                            "rows adding the most tree information (TAGS).")
                with gr.Row():
                    tags_rows = gr.Slider(4, limits.max_llm_rows, value=20, step=1, label="Rows to use (the first N)")
                    tags_budget = gr.Number(value=6, precision=0, minimum=1, label="Rows to select (budget)")
                    tags_check = gr.Slider(0, 2, value=0, step=1, label="Checker rounds (each re-asks the model)")
                tags_btn = gr.Button("Run TAGS", variant="primary", elem_id="run-tags")
            with gr.Tab("PD", elem_id="tab-pd"):
                gr.Markdown(f"Preference divergence (Zhang et al., arXiv {PD.arxiv}): split rated responses into "
                            "single-aspect pairs, score each pair under the *other* aspects, keep the pairs they agree "
                            "on. Uses the ratings in the data, so it needs no model. Load a *ratings* sample set first.")
                with gr.Row():
                    pd_rows = gr.Slider(10, limits.max_pd_rows, value=min(1000, limits.max_pd_rows), step=10, label="Rows to use (the first N)")
                    pd_ratio = gr.Slider(0.05, 1.0, value=PDPipelineConfig().ratio, step=0.05,
                                         label="Share of pairs to keep (λ)", info=pd_opt("ratio").help)
                    pd_gamma = gr.Slider(0.5, 0.99, value=pd_opt("divergence.gamma").default, step=0.01,
                                         label="Quantile γ of the gap scales")
                with gr.Row():
                    pd_stratify = gr.Checkbox(pd_opt("stratify_by_aspect").default, label="Keep λ of every aspect",
                                              info=pd_opt("stratify_by_aspect").help)
                    pd_mode = gr.Radio(list(pd_opt("split.pair_mode").choices), value=pd_opt("split.pair_mode").default,
                                       label="Pairs per prompt")
                pd_btn = gr.Button("Run PD", variant="primary", elem_id="run-pd")
            with gr.Tab("TaP", elem_id="tab-tap"):
                gr.Markdown("Taxonomy-guided preference data: prompts generated for each taxonomy leaf, several responses "
                            "each, fine-grained judging, chosen/rejected pairs (TaP).")
                with gr.Row():
                    tap_taxonomy = gr.Dropdown(methods.tap_taxonomy_choices(), value=methods.tap_taxonomy_choices()[0],
                                               label="Taxonomy", elem_id="tap-taxonomy")
                    tap_prompts = gr.Slider(1, limits.max_tap_prompts, value=6, step=1,
                                            label="Prompts to generate (one per leaf, spread over the tree)")
                    tap_responses = gr.Slider(2, 4, value=2, step=1, label="Responses per prompt")
                    tap_language = gr.Radio(["en", "zh"], value="en", label="Language")
                tap_btn = gr.Button("Run TaP", variant="primary", elem_id="run-tap")

        gr.Markdown("## 4. Result")
        summary = gr.Markdown("_Run a method to see its result here._", elem_id="result-summary")
        with gr.Row():
            chart1 = gr.BarPlot(x="label", y="value", color="series", visible=False, elem_id="chart-1", height=300)
            chart2 = gr.BarPlot(x="label", y="value", color="series", visible=False, elem_id="chart-2", height=300)
        chart3 = gr.BarPlot(x="label", y="value", color="series", visible=False, elem_id="chart-3", height=300)
        tree = gr.HTML(empty_html("The tree or taxonomy of the result appears here."), elem_id="tree-view")
        table = gr.Dataframe(label="Selected rows (best first)", interactive=False, max_height=420, wrap=True, elem_id="result-table")
        with gr.Row():
            files = gr.File(label="Download: JSONL, Parquet and the dataset card", file_count="multiple",
                            interactive=False, elem_id="result-files", scale=2)
            with gr.Column(scale=3):
                if ON_SPACES:
                    gr.LoginButton()
                with gr.Row():
                    repo_box = gr.Textbox(label="Push to dataset repo", placeholder="your-name/my-selection", scale=2)
                    token_box = gr.Textbox(label="Hub write token (not needed when signed in)", type="password", scale=2)
                    private_box = gr.Checkbox(True, label="Private", scale=1)
                push_btn = gr.Button("Push to the Hub")
                push_status = gr.Markdown()

        data_outputs = [loaded_state, data_status, preview, col_instruction, col_input, col_response]
        result_outputs = [result_state, summary, chart1, chart2, chart3, tree, table, files]
        columns = [col_instruction, col_input, col_response]
        upload.upload(load_upload, upload, data_outputs, api_name="load_upload")
        sample_btn.click(load_sample, sample_box, data_outputs, api_name="load_sample")
        hub_btn.click(load_hub, [hub_id, hub_split], data_outputs, api_name="load_hub")
        demo.load(load_sample, sample_box, data_outputs, api_name=False)
        tacos_btn.click(run_tacos, [loaded_state, *columns, *llm_inputs, tacos_rows, tacos_budget, tacos_k, tacos_strategy,
                                    tacos_passes, tacos_swap, tacos_chars], result_outputs,
                        api_name="run_tacos", concurrency_limit=1, concurrency_id="llm")
        tags_btn.click(run_tags, [loaded_state, *columns, *llm_inputs, tags_rows, tags_budget, tags_check], result_outputs,
                       api_name="run_tags", concurrency_limit=1, concurrency_id="llm")
        pd_btn.click(run_pd, [loaded_state, pd_rows, pd_ratio, pd_stratify, pd_mode, pd_gamma], result_outputs,
                     api_name="run_pd", concurrency_limit=2)
        tap_btn.click(run_tap, [loaded_state, col_instruction, *llm_inputs, tap_taxonomy, tap_prompts, tap_responses, tap_language],
                      result_outputs, api_name="run_tap", concurrency_limit=1, concurrency_id="llm")
        push_btn.click(push, [result_state, repo_box, token_box, private_box], [push_status, token_box], api_name="push")
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the hf_prefsel demo.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per LLM call is noise
    limits = SpaceLimits.from_env()
    models = ModelProvider()
    # SIGTERM (how Spaces and tests stop the app) becomes SystemExit, so atexit stops the model servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    demo = build_demo(limits, models)
    started = time.monotonic()
    try:
        demo.queue(max_size=32, default_concurrency_limit=2).launch(
            # Gradio refuses uploads past twice the limit outright; read_upload explains the limit below that.
            server_name=args.host, server_port=args.port, max_file_size=f"{2 * limits.max_upload_mb:g}mb",
            show_error=True, prevent_thread_lock=False,
        )
    finally:
        logger.info("Stopping after %.0f s", time.monotonic() - started)
        models.close()


if __name__ == "__main__":
    main()
