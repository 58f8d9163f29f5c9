"""Applying a planned pull as one transaction, and saying what it did (or would do)."""
from __future__ import annotations

from .. import ui
from ..fsutil import transaction
from .plan import Plan


def apply(project, plan: Plan) -> None:
    """Write ``plan``: any error, Ctrl-C or SIGTERM midway leaves the project as it was."""
    with transaction(project.root) as tx:
        for rel in plan.removes:
            tx.remove(rel)
        for rel, data in sorted(plan.files.items(), key=lambda item: str(item[0])):
            tx.create(rel, data)
        for rel, text in plan.changes.items():
            tx.change(rel, text.encode("utf-8"))


def report(project, plan: Plan, dry_run: bool) -> None:
    for warning in plan.warnings:
        ui.warn(warning)
    if dry_run:
        ui.info("dry run: nothing written. A pull would:")
        for rel in plan.removes:
            ui.info(f"  remove  {rel}  (--force replaces it)")
        for rel in sorted(plan.files, key=str):
            ui.info(f"  write   {rel}")
        for rel in plan.changes:
            verb = "create" if (rel.name == "requirements.in" and plan.created_requirements_in) else "change"
            ui.info(f"  {verb}  {rel}")
        return
    for p in plan.placements:
        alias = f" as {p.module.rpartition('.')[2]}" if p.job.alias else ""
        ui.info(f"pulled {p.package.dist_name} {p.package.version}{alias} from {p.source} (sha256 {p.sha256[:12]}…)")
        code_files = sum(1 for f in p.files if str(f).startswith(str(p.code_dir) + "/"))
        test_files = sum(1 for f in p.files if str(f).startswith(str(p.tests_dir) + "/"))
        replaced = " (replaced)" if p.removes else ""
        ui.info(f"  code        {p.code_dir}/ ({code_files} files){replaced}")
        for param in p.params:
            ui.info(f"  parameters  {param}")
        if test_files:
            ui.info(f"  tests       {p.tests_dir}/ ({test_files} files)")
    if plan.added_requirements:
        created = " (created from requirements.txt)" if plan.created_requirements_in else ""
        ui.info(f"requirements.in{created}: added {', '.join(plan.added_requirements)}")
        ui.info("next: run `invoke build-reqs` to re-pin requirements.txt")
    ui.info(f"recorded in {project.pyproject.name} [tool.piperack.pulled]")
