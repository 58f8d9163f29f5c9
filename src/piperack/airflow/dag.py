"""The DAG plan: everything the DAG file says, read from the project and airflow.yml and checked.

``plan()`` finds the pipelines (without importing project code), reads the config, orders the
tasks by ``depends_on``, settles the DAG's settings, the image, the output path and the command
that regenerates the file, and has the target read its own settings. Nothing is written; the
first problem found is raised as one line naming the file and key (or the option) at fault.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .. import ui
from ..docker_engine import default_tag
from ..errors import PiperackError
from ..options import RUN_ENV
from .config import DAG_KEYS, DEFAULTS, Config, Spec, load_config, parse_date
from .dagfile import task_variable
from .targets import TARGETS, Target, pipeline_resources, target_named

DEFAULT_OUTPUT = "airflow/dags"
DEFAULT_ENV = RUN_ENV
DEFAULT_TARGET = "docker"

# airflow.yml's keys: the DAG's own, and one section per target.
CONFIG_KEYS = {**DAG_KEYS, **{name: Spec("mapping", target.keys) for name, target in TARGETS.items()}}

SCHEDULE_PRESETS = {
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
    "@annually",
}
# Matched with fullmatch: ``$`` would let a trailing newline through into the DAG file.
CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,#LW-]{1,100}")
DAG_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,499}")


@dataclass
class Task:
    pipeline: str
    upstream: list[str]
    retries: int | None = None
    retry_delay_seconds: float | None = None
    resources: dict = field(default_factory=dict)


@dataclass
class DagPlan:
    target: Target  # where the tasks run, with its settings
    package: str
    project_name: str
    env: str
    dag_id: str
    schedule: str | None
    start_date: _dt.datetime | None
    catchup: bool
    max_active_runs: int
    tags: list[str]
    owner: str
    retries: int
    retry_delay_seconds: float
    image: str
    tasks: list[Task]  # in topological order
    path: Path
    output_label: str
    sources: list[str]
    command: list[str]  # the airflow-dag command that regenerates the file
    project_relative: str | None = None  # output folder -> project root, when inside the project
    notices: tuple[str, ...] = ()  # warnings shown once the command succeeds (never beside an error)


# --- pipelines and their order ------------------------------------------------------------------


def discover_pipelines(project) -> list[str]:
    """The project's pipelines, found as its runner finds them, without importing project code
    (``graph.discover``): by dotted name (``shared.ingest_b``)."""
    from ..graph import discover

    return discover(project)


def project_label(project, path: Path) -> str:
    """``path`` as shown in messages: relative to the project root when inside it."""
    try:
        return Path(path).resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _choose_pipelines(project, pipelines) -> tuple[list[str], list[str], list[str]]:
    """(every pipeline, those asked for with --pipeline, those in the DAG)."""
    available = discover_pipelines(project)
    if not available:
        raise PiperackError(
            f"{project_label(project, project.package_dir / 'pipelines')}: no pipelines (a folder with "
            "__init__.py and pipeline.py); create one with `invoke new-pipeline NAME`"
        )
    wanted = list(dict.fromkeys(pipelines or []))
    unknown = [p for p in wanted if p not in available]
    if unknown:
        raise PiperackError(f"unknown pipeline {', '.join(map(repr, unknown))} (available: {', '.join(available)})")
    variables: dict[str, str] = {}
    for name in available:
        # Python reads identifiers NFKC-normalised: 'ﬁle_task' and 'file_task' are one variable.
        variable = unicodedata.normalize("NFKC", task_variable(name))
        other = variables.setdefault(variable, name)
        if other != name:
            why = " (Python reads names NFKC-normalised)" if task_variable(other) != task_variable(name) else ""
            raise PiperackError(
                f"pipelines {other!r} and {name!r} would share the DAG file's name {variable!r}{why}: rename one"
            )
    return available, wanted, sorted(wanted) if wanted else available


def _dependencies(config: Config, available: list[str]) -> dict[str, list[str]]:
    """Each pipeline's depends_on, every name checked against the pipelines on disk."""
    label = config.source
    for name in config.get("pipelines", default={}):
        if name not in available:
            raise PiperackError(
                f"{label('pipelines', name)}: pipelines.{name}: no such pipeline (available: {', '.join(available)})"
            )
    edges: dict[str, list[str]] = {name: [] for name in available}
    for name in available:
        depends = config.get("pipelines", name, "depends_on", default=[])
        for upstream in depends:
            if upstream not in available:
                raise PiperackError(
                    f"{label('pipelines', name, 'depends_on')}: pipelines.{name}.depends_on: unknown "
                    f"pipeline {upstream!r} (available: {', '.join(available)})"
                )
        edges[name] = list(dict.fromkeys(depends))
    return edges


def _topological(config: Config, chosen: list[str], edges: dict[str, list[str]]) -> list[str]:
    """The pipelines in an order that runs each after what it depends on (ties by name); a cycle is
    one line naming the file and key."""
    state: dict[str, int] = {}
    order: list[str] = []

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = trail[trail.index(name) :] + [name]
            raise PiperackError(
                f"{config.source('pipelines', name, 'depends_on')}: pipelines.{name}.depends_on: "
                f"cycle {' -> '.join(cycle)}"
            )
        state[name] = 1
        for upstream in sorted(edges.get(name, [])):
            visit(upstream, trail + [name])
        state[name] = 2
        order.append(name)

    for name in sorted(edges):
        visit(name, [])
    return [name for name in order if name in chosen]


def minutes_to_seconds(minutes) -> float:
    seconds = float(minutes) * 60
    return int(seconds) if seconds == int(seconds) else round(seconds, 3)


def _declared_order(
    project, env: str, config: Config, available: list[str]
) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    """The order conf/base/pipelines.yml declares (graph.py, as `invoke run` reads it), joined by
    airflow.yml's older ``pipelines.<p>.depends_on``, which keeps working with one notice (returned,
    so that a command that fails shows its one error line alone)."""
    from ..graph import load

    edges = _dependencies(config, available)
    older = sorted(name for name, ups in edges.items() if ups)
    notices = ()
    if older:
        notices = (
            f"{config.source('pipelines', older[0], 'depends_on')}: pipelines.<p>.depends_on still works, but "
            "declare the order in conf/base/pipelines.yml, which invoke run, docker-run, the CI and viz follow too",
        )
    declared = load(project, env).depends_on
    return {name: sorted(set(edges.get(name, [])) | set(declared.get(name, []))) for name in available}, notices


def _tasks(config: Config, edges: dict[str, list[str]], chosen: list[str]) -> list[Task]:
    """One task per chosen pipeline, in running order; an order on a left-out pipeline is dropped
    with a warning."""
    tasks = []
    for name in _topological(config, chosen, edges):
        upstream = [u for u in edges[name] if u in chosen]
        for left_out in sorted(set(edges[name]) - set(chosen)):
            ui.warn(f"{name} depends on {left_out}, which is not in this DAG (--pipeline): that order is dropped")
        delay = config.get("pipelines", name, "retry_delay_minutes")
        tasks.append(
            Task(
                pipeline=name,
                upstream=sorted(upstream),
                retries=config.get("pipelines", name, "retries"),
                retry_delay_seconds=None if delay is None else minutes_to_seconds(delay),
                resources=pipeline_resources(config, name) if config.get("pipelines", name, "resources") else {},
            )
        )
    return tasks


# --- the DAG's settings -----------------------------------------------------------------------


def _check_schedule(label: str, schedule: str) -> str:
    schedule = schedule.strip()
    if schedule.startswith("@"):
        if schedule not in SCHEDULE_PRESETS:
            raise PiperackError(
                f"{label}: schedule: unknown preset {schedule!r} "
                f"(use one of {', '.join(sorted(SCHEDULE_PRESETS))}, a cron expression or null)"
            )
        return schedule
    fields = schedule.split()
    if len(fields) not in (5, 6) or not all(CRON_FIELD.fullmatch(f) for f in fields):
        raise PiperackError(
            f"{label}: schedule: {schedule!r} is not a cron expression (5 fields, e.g. '0 2 * * *'), "
            "a preset such as @daily, or null"
        )
    return " ".join(fields)


def _as_datetime(value) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        moment = value
    elif isinstance(value, _dt.date):
        moment = _dt.datetime(value.year, value.month, value.day)
    else:
        moment = parse_date(str(value))
    if moment.tzinfo is not None:
        moment = moment.astimezone(_dt.UTC).replace(tzinfo=None)
    return moment


def _dag_settings(config: Config, project) -> dict:
    """The DAG's own arguments (DagPlan fields), defaults filled in and checked."""
    label = config.source
    dag_id = config.get("dag_id", default=project.package)
    if not DAG_ID.fullmatch(dag_id):
        raise PiperackError(
            f"{label('dag_id')}: dag_id: {dag_id!r} may hold only letters, digits, '_', '.' and '-' (at most 250)"
        )
    schedule = config.get("schedule")
    if schedule is not None:
        schedule = _check_schedule(label("schedule"), schedule)
    start = config.get("start_date")
    start_date = _as_datetime(start) if start is not None else None
    if schedule not in (None, "@once") and start_date is None:
        raise PiperackError(
            f"{label('schedule')}: start_date: required when a schedule is set (e.g. start_date: 2026-01-01)"
        )
    return {
        "dag_id": dag_id,
        "schedule": schedule,
        "start_date": start_date,
        "catchup": config.get("catchup", default=DEFAULTS["catchup"]),
        "max_active_runs": config.get("max_active_runs", default=DEFAULTS["max_active_runs"]),
        "tags": list(dict.fromkeys(config.get("tags", default=DEFAULTS["tags"]))),
        "owner": config.get("owner", default=DEFAULTS["owner"]).strip(),
        "retries": config.get("retries", default=DEFAULTS["retries"]),
        "retry_delay_seconds": minutes_to_seconds(
            config.get("retry_delay_minutes", default=DEFAULTS["retry_delay_minutes"])
        ),
    }


def _image(config: Config, project, option: str | None) -> str:
    """--image, else airflow.yml's image, else docker-build's tag; checked as an image reference."""
    source = "--image" if option else config.source("image")
    image = option or config.get("image")
    if image is None:
        image = default_tag(project)
    if not IMAGE_REF.fullmatch(image):
        raise PiperackError(
            f"{source}: image: {image!r} is not an image reference (e.g. registry.example.com/team/demo:1.0)"
        )
    return image


def _output(project, output: str | None) -> tuple[Path, str, str | None]:
    """(the DAG file's path, its folder as --output spells it, that folder -> project root or None
    when outside the project).

    A relative --output stays inside the project; an absolute one may leave it, on purpose (Airflow's
    own dags folder). Inside the project no folder on the way may be a symbolic link, nor the file
    itself, and none may be a file: the DAG file is written, read and compared only in place."""
    if output is not None and not output.isprintable():
        raise PiperackError(f"--output {output!r}: control characters are not accepted in a folder name")
    given = Path(output) if output else Path(DEFAULT_OUTPUT)
    root = Path(os.path.normpath(project.root))
    output_dir = Path(os.path.normpath(given if given.is_absolute() else root / given))
    path = output_dir / f"{project.package}.py"
    if not output_dir.is_relative_to(root):
        if not given.is_absolute():
            raise PiperackError(
                f"--output {output}: outside the project; to write there on purpose, give it as an "
                f"absolute path ({output_dir})"
            )
        if Path(os.path.realpath(output_dir)).is_relative_to(os.path.realpath(root)):
            raise PiperackError(
                f"--output {output}: leads into the project through a symbolic link; give the path "
                "inside the project instead"
            )
        _check_folders(output, Path(output_dir.anchor), path)
        return path, str(output_dir), None
    inside = output_dir.relative_to(root)
    _check_folders(output or DEFAULT_OUTPUT, root, path, links=True)
    project_relative = os.path.relpath(root, output_dir) if inside.parts else "."
    return path, inside.as_posix() if inside.parts else ".", project_relative


def _check_folders(output: str, top: Path, path: Path, links: bool = False) -> None:
    """Refuse an --output whose folders, from ``top`` down to ``path``, hold a file (or, with
    ``links``, a symbolic link, the DAG file included)."""
    for folder in [*reversed(path.parents), path]:
        if not folder.is_relative_to(top) or folder == top:
            continue
        shown = folder.relative_to(top).as_posix() if links else str(folder)
        if links and folder.is_symlink():
            raise PiperackError(
                f"--output {output}: {shown} is a symbolic link; piperack writes, reads and compares "
                "nothing through a link in the project (to write where it leads, give that folder as an absolute path)"
            )
        if folder != path and (folder.exists() or folder.is_symlink()) and not folder.is_dir():
            raise PiperackError(f"--output {output}: {shown} is a file, not a folder")
        if folder == path and folder.exists() and not folder.is_file():
            raise PiperackError(f"--output {output}: {shown} exists and is not a file")


def _command(
    target: str, env: str, wanted: list[str], image: str | None, network: str | None, output_label: str
) -> list[str]:
    """The airflow-dag command that writes this file: the options that differ from their defaults."""
    command = ["invoke", "airflow-dag"]
    if target != DEFAULT_TARGET:
        command += ["--target", target]
    if env != DEFAULT_ENV:
        command += ["--env", env]
    for name in sorted(wanted):
        command += ["--pipeline", name]
    if image is not None:
        command += ["--image", image]
    if network:
        command += ["--network", network]
    if output_label != DEFAULT_OUTPUT:
        command += ["--output", output_label]
    return command


def plan(
    project,
    target: str = DEFAULT_TARGET,
    env: str | None = None,
    pipelines=None,
    image: str | None = None,
    network: str | None = None,
    output: str | None = None,
) -> DagPlan:
    """Read and check everything the DAG file depends on; nothing is written."""
    target_class = target_named(target or DEFAULT_TARGET)
    env = DEFAULT_ENV if env is None else env
    project.env_dir(env, must_exist=env not in {DEFAULT_ENV, "base"})
    available, wanted, chosen = _choose_pipelines(project, pipelines)
    config = load_config(project, env, CONFIG_KEYS)
    edges, notices = _declared_order(project, env, config, available)
    tasks = _tasks(config, edges, chosen)
    settings = _dag_settings(config, project)
    image_option = image
    image = _image(config, project, image_option)
    path, output_label, project_relative = _output(project, output)
    command = _command(target_class.name, env, wanted, image if image_option else None, network, output_label)
    name = project.pyproject_data.get("project", {}).get("name") or project.package
    return DagPlan(
        target=target_class.from_config(config, project, network),
        package=project.package,
        project_name=re.sub(r"[^A-Za-z0-9._ -]+", "-", str(name)),
        env=env,
        **settings,
        image=image,
        tasks=tasks,
        path=path,
        output_label=output_label,
        sources=[label for label, _ in config.files],
        command=command,
        project_relative=project_relative,
        notices=notices,
    )
