"""The ``piperack`` command: ``piperack new`` bakes a project from the installed template.

    piperack new [--no-input] [--output-dir DIR] [key=value ...]
    piperack --version
"""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="piperack",
        description="Bake data-pipeline monorepos. Inside a project, `invoke --list` shows its tasks.",
    )
    parser.add_argument("--version", action="store_true", help="print piperack's version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    new = commands.add_parser(
        "new", help="bake a new project from the template of this piperack",
        description="Bake a new project from the template of this piperack: the same questions, "
        "defaults and validation as `cookiecutter <kit>`. Answers given as key=value are not asked.",
    )
    new.add_argument("answers", nargs="*", metavar="key=value",
                     help="an answer, e.g. project_name='Sales Data' python_version=3.12 include_example=no")
    new.add_argument("--no-input", action="store_true", help="ask nothing: defaults for every answer not given")
    new.add_argument("-o", "--output-dir", default=".", metavar="DIR",
                     help="folder to create the project in (default: the current one)")
    new.add_argument("-f", "--overwrite", action="store_true",
                     help="write into an existing project folder (files the template makes are replaced)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"piperack {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from .errors import PiperackError

    try:
        if args.command == "new":
            from . import bake

            answers = bake.parse_answers(args.answers)
            bake.bake(args.output_dir, answers, no_input=args.no_input, overwrite=args.overwrite)
    except PiperackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError) as exc:
        aborted = "interrupted" if isinstance(exc, KeyboardInterrupt) else "no answer on standard input (use --no-input)"
        print(f"error: {aborted}", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
