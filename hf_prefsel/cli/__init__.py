"""The `hf-prefsel` command: one subcommand per pipeline, sharing code with `dataset_scripts/`."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "tag": ("tag", "add open intent tags to instructions (TACOS stage A)"),
    "tacos": ("tacos", "select instruction data: open tagging + comparative scoring (TACOS)"),
    "tags": ("tags", "select instruction data: knowledge concepts, tree, information gain (TAGS)"),
    "pd": ("pd", "select preference pairs by preference divergence (PD)"),
    "tap": ("tap", "generate preference and SFT data from a taxonomy (TaP)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hf-prefsel", description="Build, tag, score and select instruction and preference data.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        modules[name] = module
        module.build_parser(sub.add_parser(name, help=help_text, description=module.__doc__))
    args = parser.parse_args(argv)
    from .common import run_command

    return run_command(modules[args.command].run, args)


if __name__ == "__main__":
    sys.exit(main())
