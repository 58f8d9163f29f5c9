"""Applying a planned pull as one transaction, and saying what it did (or would do)."""

from __future__ import annotations

from .. import ui
from ..fsutil import transaction
from ..options import BASE_ENV
from .plan import PullPlan


def apply(project, plan: PullPlan) -> None:
    """Write ``plan``: any error, Ctrl-C or SIGTERM midway leaves the project as it was."""
    with transaction(project.root) as tx:
        for rel in plan.removes:
            tx.remove(rel)
        for rel, data in sorted(plan.files.items(), key=lambda item: str(item[0])):
            tx.create(rel, data)
        for rel, text in plan.changes.items():
            tx.change(rel, text.encode("utf-8"))


def _catalog_line(project, placement) -> str | None:
    """What the pulled pipeline needs from the catalog, and whether this project has it yet."""
    if not placement.catalog_keys:
        return None
    import yaml

    from ..yamlload import NestedTooDeeply, load_yaml

    name = placement.module.rpartition(".")[2]
    env = placement.job.env or BASE_ENV
    path = project.root / "conf" / env / "catalog" / f"{name}.yml"
    rel = path.relative_to(project.root)
    have: set = set()
    if path.is_file():
        try:
            data = load_yaml(path.read_text(encoding="utf-8"), allow_anchors=True)
        except (yaml.YAMLError, NestedTooDeeply, UnicodeDecodeError, OSError):
            data = None
        have = set(data) if isinstance(data, dict) else set()
    missing = [k for k in placement.catalog_keys if k not in have]
    keys = ", ".join(placement.catalog_keys)
    if not missing:
        return f"  catalog     {rel} has the keys it reads: {keys}"
    return f"  catalog     it reads {keys} from its catalog: add {', '.join(missing)} to {rel} (paths under data/)"


def report(project, plan: PullPlan, dry_run: bool) -> None:
    show = ui.shown
    for warning in plan.warnings:
        ui.warn(warning)
    if dry_run:
        ui.info("dry run: nothing written. A pull would:")
        for rel in plan.removes:
            ui.info(f"  remove  {show(rel)}  (--force replaces it)")
        for rel in sorted(plan.files, key=str):
            ui.info(f"  write   {show(rel)}")
        for rel in plan.changes:
            verb = "create" if (rel.name == "requirements.in" and plan.created_requirements_in) else "change"
            ui.info(f"  {verb}  {show(rel)}")
        for placement in plan.placements:
            line = _catalog_line(project, placement)
            if line:
                ui.info(line)
        return
    for p in plan.placements:
        alias = f" as {p.module.rpartition('.')[2]}" if p.job.alias else ""
        ui.info(
            f"pulled {show(p.package.dist_name)} {show(p.package.version)}{alias} from {show(p.source)} "
            f"(sha256 {p.sha256[:12]}…)"
        )
        code_files = sum(1 for f in p.files if str(f).startswith(str(p.code_dir) + "/"))
        test_files = sum(1 for f in p.files if str(f).startswith(str(p.tests_dir) + "/"))
        replaced = " (replaced)" if p.removes else ""
        ui.info(f"  code        {show(p.code_dir)}/ ({code_files} files){replaced}")
        for param in p.params:
            ui.info(f"  parameters  {show(param)}")
        if test_files:
            ui.info(f"  tests       {show(p.tests_dir)}/ ({test_files} files)")
        line = _catalog_line(project, p)
        if line:
            ui.info(line)
    if plan.added_requirements:
        created = " (created from requirements.txt)" if plan.created_requirements_in else ""
        ui.info(f"requirements.in{created}: added {', '.join(map(show, plan.added_requirements))}")
        ui.info("next: run `invoke build-reqs` to re-pin requirements.txt")
    ui.info(f"recorded in {project.pyproject.name} [tool.piperack.pulled]")
