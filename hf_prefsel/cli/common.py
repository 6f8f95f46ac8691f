"""What every command shares: options generated from the configs, the model, output checks, and how runs end.

Options come from the config dataclasses (`hf_prefsel.options`): a command lists which config fields it exposes and
under which flag; the type, default and help are the config's. Every command validates its options and output path
before any model call or server start, prints library errors as one `error: ...` line (the traceback only with
`--debug`), and on Ctrl-C says what is kept and how to resume.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..data_files import load_data
from ..errors import ConfigError, HfPrefselError, MissingColumnError
from ..llm import LLMConfig, serve_local
from ..options import build_config, option

Spec = Mapping[str, str]  # flag name (argparse dest) -> dotted config path

LLM_OPTIONS: Spec = {
    "endpoint": "endpoints", "model": "model", "route": "route", "concurrency": "max_concurrency",
    "timeout": "timeout", "max_retries": "max_retries", "max_calls": "max_calls", "cache_path": "cache_path",
}
OUTPUT_SUFFIXES = (".jsonl", ".json", ".parquet")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _auto_bool(text: str) -> bool | None:
    value = {"auto": None, "yes": True, "true": True, "no": False, "false": False}.get(text.lower(), "?")
    if value == "?":
        raise argparse.ArgumentTypeError(f"expected auto, yes or no, got {text!r}")
    return value  # type: ignore[return-value]


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, spec: Spec,
                help_overrides: Mapping[str, str] | None = None) -> None:
    """Add one argument per `spec` entry, typed, defaulted and documented from `cls`'s field at that path.

    Every argument defaults to `None` (= the config's default): only what a person typed is passed on. The flags
    are also kept by config path (`args.config_flags`), so an error naming a config field can name its flag.
    """
    flags = dict(parser.get_default("config_flags") or {})
    for dest, path in spec.items():
        opt = option(cls, path)
        flag = "--" + dest.replace("_", "-")
        flags[path] = flag
        text = (help_overrides or {}).get(dest) or opt.help.replace("`", "")
        if opt.default not in (None, [], {}) and not isinstance(opt.default, bool):
            text += f" (default: {opt.default})"
        text = text.replace("%", "%%")  # argparse formats help with %
        kind = opt.base_type
        if kind is bool and opt.default is None:  # unset = decided by the model (e.g. explanations)
            parser.add_argument(flag, dest=dest, type=_auto_bool, choices=[None, True, False], default=None,
                                metavar="{auto,yes,no}", help=text + " (default: auto)")
        elif kind is bool:
            action: Any = argparse.BooleanOptionalAction if opt.default is True else "store_true"
            parser.add_argument(flag, dest=dest, action=action, default=None, help=text)
        elif kind is list:
            parser.add_argument(flag, dest=dest, action="append", default=None, metavar=dest.upper(), help=text)
        elif kind is dict:
            parser.add_argument(flag, dest=dest, action="append", type=_key_value, default=None,
                                metavar="KEY=VALUE", help=text)
        else:
            parser.add_argument(flag, dest=dest, type=kind, choices=opt.choices, default=None, help=text)
    parser.set_defaults(config_flags=flags)


def option_values(args: argparse.Namespace, spec: Spec) -> dict[str, Any]:
    """`{config path: value}` of the options given on the command line."""
    out: dict[str, Any] = {}
    for dest, path in spec.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            value = dict(value)
        out[path] = value
    return out


def config_from_args(cls: type, args: argparse.Namespace, spec: Spec, **fixed: Any) -> Any:
    """The method config for the parsed options: validated here, before any data is read or model called."""
    return build_config(cls, {**option_values(args, spec), **fixed})


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options every LLM command takes (from `LLMConfig`), plus the embedded model's replicas."""
    group = parser.add_argument_group("model")
    add_options(group, LLMConfig, LLM_OPTIONS, {
        "endpoint": "base URL of a TGI/vLLM/llama.cpp/OpenAI-compatible server; repeat for replicas. "
                    "Default: the embedded Gemma 3 270M served locally.",
        "concurrency": "cap on requests in flight over all replicas (default: what the servers report they can take)",
        "cache_path": "the request cache file (default: ~/.cache/hf_prefsel/requests.sqlite)",
    })
    group.add_argument("--token-env", metavar="VAR",
                       help="environment variable holding the endpoints' bearer token. Without it only Hugging Face "
                            "hosts get a token (your Hugging Face one): other servers never see it")
    group.add_argument("--local-replicas", type=int, default=2,
                       help="llama.cpp server replicas for the embedded model (0 = run it in this process)")
    group.add_argument("--no-cache", action="store_true", help="do not read or write the request cache")


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """`--ray ADDRESS`: run the per-row model stages on a Ray cluster (the `ray` extra)."""
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="run tagging and judging on the Ray cluster at ADDRESS (host:port of `ray start --head`); "
                             "global stages stay here, and a rerun after a crash resumes (needs hf_prefsel[ray])")


@contextlib.contextmanager
def executor_from_args(args: argparse.Namespace) -> Iterator[Any]:
    """`None` (this process), or a `RayExecutor` for `--ray`, closed afterwards."""
    address = getattr(args, "ray", None)
    if not address:
        yield None
        return
    try:
        from ..distributed import RayExecutor
    except ImportError as exc:
        from ..errors import DependencyError

        raise DependencyError("ray", "ray", "--ray") from exc
    with RayExecutor(address) as executor:
        yield executor


def check_executor(args: argparse.Namespace) -> None:
    """A dead `--ray` address is refused within seconds, before any work (ray.init would wait minutes)."""
    if getattr(args, "ray", None):
        try:
            from ..distributed import check_address
        except ImportError as exc:
            from ..errors import DependencyError

            raise DependencyError("ray", "ray", "--ray") from exc
        check_address(args.ray)


def endpoint_token(args: argparse.Namespace) -> str | None:
    """The bearer token `--token-env` names, or `None` (Hugging Face hosts then get the local Hugging Face token)."""
    if not getattr(args, "token_env", None):
        return None
    token = os.environ.get(args.token_env)
    if not token:
        raise ConfigError(f"--token-env {args.token_env}: that environment variable is unset or empty; export it first.")
    return token


def llm_settings(args: argparse.Namespace) -> dict[str, Any]:
    """`LLMConfig` fields from the options (checked now, before a server starts)."""
    values = option_values(args, LLM_OPTIONS)
    values["cache"] = not args.no_cache
    if args.local_replicas < 0:
        raise ConfigError(f"--local-replicas must be >= 0, got {args.local_replicas}.")
    if values.get("endpoints"):
        values["token"] = endpoint_token(args)
    LLMConfig(**{k: v for k, v in values.items() if k != "endpoints"}, endpoints=values.get("endpoints") or [])
    return values


@contextlib.contextmanager
def llm_from_args(args: argparse.Namespace) -> Iterator[LLMConfig]:
    """An `LLMConfig` for the parsed options, starting (and afterwards stopping) local servers if needed."""
    values = llm_settings(args)
    if values.get("endpoints"):
        yield LLMConfig(**values)
    elif args.local_replicas == 0:
        yield LLMConfig(**values)
    else:
        print(f"Starting {args.local_replicas} local llama.cpp server(s) with the embedded Gemma 3 270M...", file=sys.stderr)
        with serve_local(args.local_replicas) as servers:
            yield servers.config(**values)


def add_output_arguments(parser: argparse.ArgumentParser, *, folder_only: bool = False) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--output", help="a folder for the data, its card, artifacts and report" if folder_only else
                       "write the result: a .jsonl/.json/.parquet file (card next to it), or a folder with the "
                       "artifacts and report too")
    group.add_argument("--push-to-hub", metavar="REPO", help="push the result and its card to this Hub dataset repo")
    group.add_argument("--private", action="store_true", help="create the Hub repo as private")
    parser.add_argument("--max-failed-share", type=float, default=1.0,
                        help="exit with status 1 (after writing) when at least this share of the rows failed "
                             "(default 1.0: only when every row failed)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")


def check_output(path: str | None, inputs: list[str] | tuple[str, ...] = (), *, folder_only: bool = False) -> None:
    """Refuse an output path that cannot be written, or would overwrite the input, before any work is done."""
    if not path:
        return
    out = Path(path).expanduser()
    suffix = out.suffix.lower()
    if folder_only and suffix in OUTPUT_SUFFIXES + (".csv",):
        raise ConfigError(f"--output {path!r} looks like a file, but this command writes several files: pass a folder.")
    if suffix and suffix not in OUTPUT_SUFFIXES and not out.is_dir() and not folder_only:
        raise ConfigError(f"--output {path!r}: write .jsonl, .json or .parquet, or give a folder (no extension).")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--output {path!r}: {str(parent)!r} is a file, not a folder.")
            break
    resolved = out.resolve()
    for source in inputs:
        if source and os.path.exists(source) and Path(source).resolve() in (resolved, *resolved.parents):
            raise ConfigError(f"--output {path!r} would overwrite the input {source!r}; choose another path.")
    readme = out / "README.md"
    if out.is_dir() and readme.exists():
        from ..hub.save import is_our_card

        if not is_our_card(readme):  # someone's project folder, not an earlier output of ours
            raise ConfigError(f"--output {path!r} is a folder with its own README.md (a project, not an output of "
                              "ours); give a new folder or a .jsonl path.")


def input_name(path_or_id: str) -> str:
    """The input as a card should name it: a Hub id as given, a local path by its file name only."""
    return os.path.basename(os.path.normpath(path_or_id)) if os.path.exists(path_or_id) else path_or_id


def write_result(result: Any, args: argparse.Namespace) -> None:
    """`--output` then `--push-to-hub` (a failed push keeps the data on disk and its error says where)."""
    from ..result import MethodResult

    # (TaP writes its prompts and ratings even without a pair: they were paid for and load on their own)
    if (args.output or args.push_to_hub) and isinstance(result, MethodResult) and len(result.dataset) == 0:
        from ..errors import DataError

        raise DataError("The run kept no rows (see the summary and notes above), so nothing was written or pushed: "
                        "an empty file cannot be loaded back with its card's load_dataset snippet.")
    if args.output:
        print(f"wrote {result.save(args.output)}")
    if args.push_to_hub:
        print(f"pushed {result.push_to_hub(args.push_to_hub, private=args.private or None)}")


def print_summary(result: Any) -> None:
    """One `summary:` line of key=value pairs (scripts and tests parse it), one `time:` line, and the notes."""
    print("\n" + result.summary_line())
    seconds = "  ".join(f"{k}={v:.1f}s" for k, v in result.report.seconds.items())
    models = "; ".join(f"{k}: {v}" for k, v in result.report.models.items())
    print(f"time: {seconds}" + (f"  model: {models}" if models else ""))
    for note in result.report.notes:
        print(f"note: {note}")


def failed_exit(result: Any, args: argparse.Namespace) -> int:
    """0, or 1 when the share of failed rows reaches `--max-failed-share` (said on stderr). `result` is a
    `MethodResult` or a `RunReport`."""
    counts = getattr(result, "report", result).counts
    rows, failed = counts.get("rows_in") or counts.get("responses", 0), counts.get("failed_rows", 0)
    if rows and failed and failed / rows >= args.max_failed_share:
        print(f"error: {failed} of {rows} rows failed (see the *_error column of the output); exit status 1. "
              "Check the endpoint and rerun: rows already answered are served from the request cache.", file=sys.stderr)
        return 1
    return 0


def run_command(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command: library errors as one line (exit 2), Ctrl-C as a resume hint (exit 130)."""
    try:
        return run(args)
    except KeyboardInterrupt:
        from ..llm import shared_clients

        paid = sum(c.usage.calls for c in shared_clients())
        print(f"\ninterrupted: {paid} model replies paid in this run are kept in the request cache; "
              "rerun the same command to resume without paying for them again.", file=sys.stderr)
        return 130
    except HfPrefselError as err:
        if isinstance(err, MissingColumnError) and err.option:
            err.flag = (getattr(args, "config_flags", None) or {}).get(err.option)
        if getattr(args, "debug", False):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2


__all__ = [
    "LLM_OPTIONS", "add_executor_arguments", "add_llm_arguments", "add_options", "add_output_arguments",
    "check_executor", "check_output", "config_from_args", "executor_from_args",
    "endpoint_token", "failed_exit", "input_name", "llm_from_args", "llm_settings", "load_data", "option_values",
    "print_summary", "run_command", "write_result",
]
