"""The ``piperack`` command: ``piperack new`` bakes a project from the installed template,
``piperack update`` is ``invoke update-project`` for the project holding the working directory.

    piperack new [--no-input] [--output-dir DIR] [key=value ...]
    piperack update [--check | --dry-run | --diff] [--from PATH_OR_URL] [--from-version X] ...
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
        "new",
        help="bake a new project from the template of this piperack",
        description="Bake a new project from the template of this piperack: the same questions, "
        "defaults and validation as `cookiecutter <kit>`. Answers given as key=value are not asked.",
    )
    new.add_argument(
        "answers",
        nargs="*",
        metavar="key=value",
        help="an answer, e.g. project_name='Sales Data' python_version=3.12 include_example=no",
    )
    new.add_argument("--no-input", action="store_true", help="ask nothing: defaults for every answer not given")
    new.add_argument(
        "-o",
        "--output-dir",
        default=".",
        metavar="DIR",
        help="folder to create the project in (default: the current one)",
    )
    new.add_argument(
        "-f",
        "--overwrite",
        action="store_true",
        help="write into an existing project folder (files the template makes are replaced)",
    )
    upd = commands.add_parser(
        "update",
        help="merge the installed piperack's template into the project here (= invoke update-project)",
        description="Merge the template of the installed piperack into the project holding the working "
        "directory, keeping the team's edits: the same engine as `invoke update-project` (docs/updating.md).",
    )
    from .options import UPDATE_HELP

    upd.add_argument("--check", action="store_true", help=UPDATE_HELP["check"])
    upd.add_argument("--dry-run", action="store_true", help=UPDATE_HELP["dry-run"])
    upd.add_argument("--diff", action="store_true", help=UPDATE_HELP["diff"])
    upd.add_argument("--from", dest="from_source", metavar="PATH_OR_URL", help=UPDATE_HELP["from"])
    upd.add_argument("--from-version", metavar="X", help=UPDATE_HELP["from-version"])
    upd.add_argument("--allow-dirty", action="store_true", help=UPDATE_HELP["allow-dirty"])
    upd.add_argument("--ask", action="store_true", help=UPDATE_HELP["ask"])
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import funnel

    try:
        with funnel():
            return _main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"piperack {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "new":
        from . import bake

        answers = bake.parse_answers(args.answers)
        bake.bake(args.output_dir, answers, no_input=args.no_input, overwrite=args.overwrite)
    elif args.command == "update":
        from . import update
        from .options import UpdateOptions
        from .project import find_project

        options = UpdateOptions(
            check=args.check,
            dry_run=args.dry_run,
            diff=args.diff,
            from_source=args.from_source,
            from_version=args.from_version,
            allow_dirty=args.allow_dirty,
            ask=args.ask,
        )
        update.update(find_project(), options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
