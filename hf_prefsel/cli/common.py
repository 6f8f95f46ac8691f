"""What every pipeline command shares: loading data, choosing the model, writing and pushing results."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Iterator

from ..errors import ConfigError, DataError
from ..llm import LLMConfig, serve_local

_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def load_data(path_or_id: str, *, limit: int | None = None, split: str = "train"):
    """Load a local JSON/JSONL/CSV/Parquet file, a folder saved by `save_to_disk`, or a Hub dataset id.

    Files split in parts (`name-00.jsonl`, `name-01.jsonl`, ...) can be given as a glob.
    """
    import glob

    import datasets

    files = sorted(glob.glob(path_or_id)) if any(c in path_or_id for c in "*?[") else []
    if files or os.path.isfile(path_or_id):
        files = files or [path_or_id]
        ext = os.path.splitext(files[0])[1].lower()
        if ext not in _FILE_BUILDERS:
            raise ConfigError(f"Cannot read {files[0]!r}: supported files are {', '.join(_FILE_BUILDERS)}.")
        ds = datasets.load_dataset(_FILE_BUILDERS[ext], data_files=files, split=split)
    elif os.path.isdir(path_or_id):
        ds = datasets.load_from_disk(path_or_id)
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
    elif os.path.sep in path_or_id and not path_or_id.count("/") == 1:
        raise DataError(f"{path_or_id!r} is neither a file nor a folder.")
    else:
        try:
            ds = datasets.load_dataset(path_or_id, split=split)
        except Exception as exc:  # the Hub's offline and not-found errors vary between versions
            raise DataError(
                f"Could not load {path_or_id!r} as a local path or from the Hub ({type(exc).__name__}: {exc}). "
                "Without Hub access, pass a local .jsonl/.csv/.parquet file."
            ) from exc
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options every LLM pipeline takes."""
    group = parser.add_argument_group("model")
    group.add_argument("--endpoint", action="append", default=[], metavar="URL",
                       help="base URL of a TGI/vLLM/llama.cpp/OpenAI-compatible server; repeat for replicas. "
                            "Default: the embedded Gemma 3 270M served locally.")
    group.add_argument("--model", help="model name to send to the endpoint (vLLM/OpenAI servers)")
    group.add_argument("--token-env", metavar="VAR",
                       help="environment variable holding the endpoints' bearer token. Without it only Hugging Face "
                            "hosts get a token (your Hugging Face one): other servers never see it")
    group.add_argument("--route", choices=["auto", "chat", "completion"], default="auto",
                       help="chat for instruction-tuned models, completion (few-shot) for base models")
    group.add_argument("--local-replicas", type=int, default=2,
                       help="llama.cpp server replicas for the embedded model (0 = run it in this process)")
    group.add_argument("--concurrency", type=int, default=None, help="requests in flight (default: one per replica)")
    group.add_argument("--max-calls", type=int, default=None, help="stop paying after this many LLM calls")
    group.add_argument("--cache-path", default=None, help="request cache file (default ~/.cache/hf_prefsel)")
    group.add_argument("--no-cache", action="store_true", help="do not read or write the request cache")


def endpoint_token(args: argparse.Namespace) -> str | None:
    """The bearer token `--token-env` names, or `None` (Hugging Face hosts then get the local Hugging Face token)."""
    if not getattr(args, "token_env", None):
        return None
    token = os.environ.get(args.token_env)
    if not token:
        raise ConfigError(f"--token-env {args.token_env}: that environment variable is unset or empty.")
    return token


@contextlib.contextmanager
def llm_from_args(args: argparse.Namespace) -> Iterator[LLMConfig]:
    """An `LLMConfig` for the parsed options, starting (and afterwards stopping) local servers if needed."""
    common = dict(max_calls=args.max_calls, cache=not args.no_cache, cache_path=args.cache_path)
    if args.endpoint:
        yield LLMConfig(
            endpoints=args.endpoint, model=args.model, route=args.route, token=endpoint_token(args),
            max_concurrency=args.concurrency or max(4, 2 * len(args.endpoint)), **common,
        )
    elif args.local_replicas <= 0:
        yield LLMConfig(route=args.route, **common)
    else:
        print(f"Starting {args.local_replicas} local llama.cpp server(s) with the embedded Gemma 3 270M...", file=sys.stderr)
        with serve_local(args.local_replicas) as servers:
            overrides = {"max_concurrency": args.concurrency} if args.concurrency else {}
            if args.route != "auto":
                overrides["route"] = args.route
            yield servers.config(**common, **overrides)


def is_embedded(config: LLMConfig) -> bool:
    """True for the embedded Gemma, in process or behind `serve_local()` servers."""
    return config.is_local or (
        config.server == "llama_cpp_python" and all(e.startswith("http://127.0.0.1") for e in config.endpoints)
    )


def describe_model(config: LLMConfig) -> str:
    """A token-free description of the model for summaries and dataset cards."""
    if config.is_local:
        return "embedded Gemma 3 270M (llama-cpp-python, in process)"
    if is_embedded(config):
        return f"embedded Gemma 3 270M (local llama.cpp servers: {len(config.endpoints)})"
    return f"{config.model or 'model'} at {', '.join(config.endpoints)} ({config.resolved_route} route)"


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--output", help="write the result: .jsonl, .parquet, or a folder")
    group.add_argument("--push-to-hub", metavar="REPO", help="push the result and its card to this Hub dataset repo")
    group.add_argument("--private", action="store_true", help="create the Hub repo as private")


def usage_counts(usage: dict[str, int]) -> dict[str, int]:
    """The LLM cost figures every pipeline summary and dataset card reports."""
    return {
        "llm_calls": usage["calls"], "cache_hits": usage["cache_hits"], "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"], "llm_failures": usage["failures"],
    }


def print_summary(summary: dict[str, object], timings: dict[str, float], model: str) -> None:
    """One `summary:` line of key=value pairs (scripts and tests parse it) and one `time:` line."""
    print("\nsummary: " + "  ".join(f"{k}={v}" for k, v in summary.items()))
    print("time: " + "  ".join(f"{k}={v:.1f}s" for k, v in timings.items()) + f"  model: {model}")
