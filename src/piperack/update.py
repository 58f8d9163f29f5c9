"""``invoke update-project`` / ``piperack update``: bring a project's template files up to the
installed piperack without losing the team's edits.

Three versions of every template-owned file:

- **base**: the template of the piperack version recorded in .piperack.json, rendered with the
  recorded answers. It comes from ``piperack==<recorded>`` fetched with pip (``pip download
  --no-deps --only-binary :all:``, so pip's index, find-links and pip.conf apply and nothing is
  built), or from ``--from`` (a kit checkout, a wheel or an sdist, as a path or a URL).
- **theirs**: the template of the installed piperack, rendered with the same answers (questions
  new in it take their defaults, or are asked with ``--ask``).
- **ours**: the project as it is.

Per file: changed only by the template, take theirs; changed only by the team, keep ours; changed
by both, a line-level three-way merge (``git merge-file``) whose conflicts are written inline with
``<<<<<<< project`` / ``>>>>>>> piperack <new>`` markers. What the team owns (pipelines, their
tests, conf/, data/, requirements.txt…: ``TEAM_OWNED``) is never read or written. Everything is
planned in memory and written at the end as one ``fsutil.transaction``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import ui
from .errors import PiperackError, first_line
from .merge import merge_one, unified_diff
from .options import UpdateOptions
from .project import Project

RECORD = ".piperack.json"
REQUIREMENTS_DEV = "requirements-dev.txt"
COMMAND = "invoke update-project"
MAX_TEMPLATE_BYTES = 100 * 1024 * 1024  # a piperack wheel or sdist is well under 1 MB
MAX_TEMPLATE_FILES = 5_000

# Paths the team owns: never read, merged or written by an update ({pkg}: the project package).
TEAM_OWNED = (
    "conf/**",
    "data/**",
    "samples/**",
    "dist/**",
    "build/**",
    ".docker/**",
    "logs/**",
    "src/{pkg}/pipelines/**",
    "src/tests/pipelines/**",
    "requirements.txt",
)
_PIN = re.compile(r"^piperack\s*==\s*[^\s;#]+", re.MULTILINE)
ACTIONS = ("add", "update", "merge", "conflict", "keep", "delete")

# Option help, shared by `invoke update-project` and `piperack update`.


# -- the record -------------------------------------------------------------------------------------


@dataclass
class Record:
    version: str | None
    answers: dict


def read_record(project: Project) -> Record | None:
    """.piperack.json, checked as untrusted input; None when the project has none."""
    from packaging.version import InvalidVersion, Version

    path = project.root / RECORD
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PiperackError(f"{RECORD}: not valid JSON ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise PiperackError(f"{RECORD}: expected an object with piperack_version and answers")
    version = data.get("piperack_version")
    if version is not None:
        try:
            Version(str(version))
        except InvalidVersion:
            raise PiperackError(f"{RECORD}: piperack_version {version!r} is not a version") from None
    answers = data.get("answers", {})
    if not isinstance(answers, dict):
        raise PiperackError(f"{RECORD}: answers must be an object of question = answer")
    for key, value in answers.items():
        if not isinstance(value, (str, bool)) or key.startswith("_"):
            raise PiperackError(f"{RECORD}: answer {key!r} must be a string or true/false, got {value!r}")
    return Record(version=None if version is None else str(version), answers=answers)


def inferred_answers(project: Project) -> dict:
    """Answers read back from a project that records none (made before piperack wrote .piperack.json)."""
    data = project.pyproject_data.get("project", {})
    answers = {"python_package": project.package}
    if isinstance(data.get("name"), str):
        answers["repo_name"] = data["name"]
    if isinstance(data.get("description"), str):
        answers["description"] = data["description"]
    authors = data.get("authors")
    if (
        isinstance(authors, list)
        and authors
        and isinstance(authors[0], dict)
        and isinstance(authors[0].get("name"), str)
    ):
        answers["author_name"] = authors[0]["name"]
    match = re.fullmatch(r">=\s*(3\.\d+)", str(data.get("requires-python", "")).strip())
    if match:
        answers["python_version"] = match.group(1)
    readme = project.root / "README.md"
    if readme.is_file():
        first = readme.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
        if first and first[0].startswith("# "):
            answers["project_name"] = first[0][2:].strip()
    answers["include_example"] = (project.package_dir / "pipelines" / "ingest").is_dir()
    return answers


def installed_version() -> str:
    from importlib.metadata import version

    return version("piperack")


def check(project: Project) -> str:
    """``--check``: a line saying the project is up to date; PiperackError (exit 1) when it is not."""
    record = read_record(project)
    installed = installed_version()
    if record is None or record.version is None:
        raise PiperackError(
            f"{RECORD} records no piperack version ({installed} is installed): run {COMMAND} --from-version X"
        )
    if record.version != installed:
        raise PiperackError(f"made with piperack {record.version}, {installed} is installed: run {COMMAND}")
    return f"made with piperack {installed}, the installed version: up to date"


# -- templates ----------------------------------------------------------------------------------------


def _safe_member(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or not path.parts:
        return None
    return path


def unpack_wheel(wheel: Path, dest: Path) -> Path:
    """The template carried by a piperack wheel, unpacked safely into ``dest``; its folder."""
    import zipfile

    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PiperackError(f"{wheel.name}: not a readable wheel ({first_line(exc)})") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_TEMPLATE_FILES or sum(m.file_size for m in members) > MAX_TEMPLATE_BYTES:
            raise PiperackError(f"{wheel.name}: too large to be a piperack wheel; refused")
        wanted = []
        for member in members:
            path = _safe_member(member.filename)
            if path is None:
                raise PiperackError(f"{wheel.name}: unsafe member name {member.filename!r}; refused")
            if path.parts[:2] == ("piperack", "template") or (
                len(path.parts) == 2 and path.parts[0].endswith(".dist-info") and path.name == "METADATA"
            ):
                wanted.append((member, path))
        if not any(path.parts[:3] == ("piperack", "template", "cookiecutter.json") for _, path in wanted):
            raise PiperackError(f"{wheel.name}: carries no piperack template (piperack/template/cookiecutter.json)")
        for member, path in wanted:
            target = dest.joinpath(*path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    return dest / "piperack" / "template"


def unpack_sdist(sdist: Path, dest: Path) -> Path:
    """The template in a piperack sdist (the kit root), unpacked with pull's archive checks."""
    from .archive import read_archive

    top, files = read_archive(sdist, label=sdist.name, max_bytes=MAX_TEMPLATE_BYTES)
    if PurePosixPath("cookiecutter.json") not in files:
        raise PiperackError(f"{sdist.name}: carries no piperack template (cookiecutter.json at its top)")
    root = dest / top
    for rel, data in files.items():
        target = root.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def template_from(source: str, work: Path) -> Path:
    """``--from``: a kit checkout, or a piperack wheel or sdist, as a path or any fsspec URL."""
    from .fetch import classify, fetch

    if classify(source) == "url":
        path = fetch(source, work / "download", max_bytes=MAX_TEMPLATE_BYTES).path
    else:
        path = Path(source).expanduser().resolve()
        if path.is_dir():
            if not (path / "cookiecutter.json").is_file():
                raise PiperackError(f"--from {source}: no cookiecutter.json there (expected a piperack kit checkout)")
            return path
        if not path.is_file():
            raise PiperackError(f"--from {source}: no such file or folder")
    if path.name.endswith(".whl"):
        return unpack_wheel(path, work / "base")
    if path.name.endswith((".tar.gz", ".tgz")):
        return unpack_sdist(path, work / "base")
    raise PiperackError(f"--from {source}: expected a kit checkout, a .whl or a .tar.gz of piperack")


def download_template(version: str, work: Path) -> Path:
    """The template of ``piperack==version`` from the index pip is configured with (a wheel only)."""
    from .download import strip_credentials
    from .indexes import pip_settings

    settings = pip_settings()
    where = (
        ", ".join(
            f"{key} {strip_credentials(value)}" for key, value in settings.items() if key in {"index-url", "find-links"}
        )
        or "index-url https://pypi.org/simple"
    )
    dest = work / "download"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        f"piperack=={version}",
    ]
    scratch = work / "pip-tmp"  # pip's temporary folders inside ours: gone with it, also after Ctrl-C
    scratch.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"TMPDIR": str(scratch), "TEMP": str(scratch), "TMP": str(scratch)}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PiperackError(
            f"could not run pip to fetch piperack=={version} ({first_line(exc)}): "
            "pass --from PATH_OR_URL (a kit checkout, a wheel or an sdist of that version)"
        ) from None
    wheels = sorted(dest.glob("piperack-*.whl")) if proc.returncode == 0 else []
    if not wheels:
        raise PiperackError(
            f"piperack=={version} (the version that made this project) was not found by pip ({where}): "
            f"pass --from PATH_OR_URL (a kit checkout, a wheel or an sdist of piperack {version})"
        )
    return unpack_wheel(wheels[0], work / "base")


_RENDER = """
import json, sys
from cookiecutter.main import cookiecutter
template, out, answers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(cookiecutter(template, no_input=True, output_dir=out, extra_context=answers))
"""


def render(template: Path, answers: dict, dest: Path, label: str) -> dict[str, bytes]:
    """Every file the template makes with ``answers``, by POSIX path relative to the project.

    Each render runs in its own process: two versions of the template's extension module
    (local_extensions.py) must not meet in one interpreter, and the hooks' output stays quiet.
    """
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", _RENDER, str(template), str(dest), json.dumps(answers)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith("error:")), lines[-1] if lines else "failed")
        raise PiperackError(
            f"the {label} template could not be rendered with the recorded answers: {reason.removeprefix('error: ')}"
        )
    root = Path(proc.stdout.strip().splitlines()[-1])
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def ask_new_questions(template: Path, answers: dict) -> dict:
    """Ask (on the terminal) for the questions the new template added; empty input keeps the default."""
    data = json.loads((template / "cookiecutter.json").read_text(encoding="utf-8"))
    prompts = data.get("__prompts__", {}) if isinstance(data.get("__prompts__"), dict) else {}
    asked = dict(answers)
    for key, default in data.items():
        if key.startswith("_") or key in answers:
            continue
        shown = default[0] if isinstance(default, list) else default
        try:
            text = input(f"{prompts.get(key, key)} [{shown}]: ").strip()
        except EOFError:
            raise PiperackError(
                f"--ask: no answer for {key!r} on standard input (it is closed): answer on a terminal, "
                "or leave out --ask to take the new questions' defaults"
            ) from None
        if text:
            asked[key] = text
    return asked


# -- planning ------------------------------------------------------------------------------------------


@dataclass
class Change:
    path: str
    action: str  # add, update, merge, conflict, keep, delete
    data: bytes | None = None  # what is written (None: nothing written for this path)
    note: str = ""


@dataclass
class UpdatePlan:
    """What an update does to each template-owned file, from the base version to the new one."""

    base_version: str
    new_version: str
    changes: list[Change] = field(default_factory=list)
    current: dict = field(default_factory=dict)  # path -> the project's bytes (None: absent), for --diff

    def writes(self) -> list[Change]:
        return [c for c in self.changes if c.data is not None or c.action == "delete"]

    def conflicts(self) -> list[Change]:
        return [c for c in self.changes if c.action == "conflict"]


def team_owned(rel: str, package: str) -> bool:
    path = PurePosixPath(rel)
    for pattern in TEAM_OWNED:
        pattern = pattern.format(pkg=package)
        if pattern.endswith("/**"):
            prefix = PurePosixPath(pattern[:-3])
            if path == prefix or prefix in path.parents:
                return True
        elif path == PurePosixPath(pattern):
            return True
    return False


def _raise_pin(data: bytes, version: str) -> bytes:
    text = data.decode("utf-8")
    if "<<<<<<<" in text:
        return data
    return _PIN.sub(f"piperack=={version}", text).encode("utf-8")


def plan_update(
    project: Project, base: dict[str, bytes], theirs: dict[str, bytes], base_version: str, new_version: str
) -> UpdatePlan:
    """What the update does to each template-owned file (nothing is written here)."""
    from .fsutil import confined, read_confined

    plan = UpdatePlan(base_version=base_version, new_version=new_version)
    labels = ("project", f"piperack {base_version} (base)", f"piperack {new_version}")
    for rel in sorted(set(base) | set(theirs)):
        if team_owned(rel, project.package):
            continue
        try:
            path = confined(project.root, rel)
        except PiperackError:
            plan.changes.append(Change(rel, "keep", note="below a symbolic link in the project: left alone"))
            continue
        if path.is_symlink() or (path.exists() and not path.is_file()):
            plan.changes.append(Change(rel, "keep", note="not a regular file in the project: left alone"))
            continue
        ours = read_confined(project.root, rel)
        plan.current[rel] = ours
        old, new = base.get(rel), theirs.get(rel)
        if rel == RECORD:  # the record always becomes the new template's: version and answers
            if ours != new:
                plan.changes.append(Change(rel, "update", new))
            continue
        merged = merge_one(ours, old, new, labels, upstream="the template")
        if rel == REQUIREMENTS_DEV and merged.action in ("merge", "conflict") and merged.data is not None:
            merged.data = _raise_pin(merged.data, new_version)
        if merged.action != "same":
            plan.changes.append(Change(rel, merged.action, merged.data, note=merged.note))
    return plan


# -- the verb ------------------------------------------------------------------------------------------


def _dirty(project: Project, paths: list[str]) -> list[str] | None:
    """Of ``paths``, those with uncommitted changes; None when this is not a git work tree."""
    git = shutil.which("git")
    if not git or not paths:
        return None if not git else []
    inside = subprocess.run(
        [git, "rev-parse", "--is-inside-work-tree"], cwd=project.root, capture_output=True, text=True
    )
    if inside.returncode or inside.stdout.strip() != "true":
        return None
    status = subprocess.run(
        [git, "status", "--porcelain", "--untracked-files=all", "--", *paths],
        cwd=project.root,
        capture_output=True,
        text=True,
    )
    return sorted({line[3:].strip().strip('"') for line in status.stdout.splitlines() if line.strip()})


def _diff(plan: UpdatePlan) -> None:
    for change in plan.writes():
        sys.stdout.writelines(unified_diff(change.path, plan.current.get(change.path), change.data))
    sys.stdout.flush()


def update(project: Project, options: UpdateOptions | None = None) -> UpdatePlan | None:
    """Run ``invoke update-project``; PiperackError on a refusal (nothing written) or on conflicts."""
    options = options or UpdateOptions()
    if options.check:
        ui.info(check(project))
        return None
    from .fsutil import write_session
    from .project import find_project

    # One session from the first read to the last write: a pull waits, a killed update is put back
    # before the record is read (so a half-updated tree is never taken for an updated one).
    with write_session(project.root, "update-project"):
        return _update(find_project(project.root), options)


def _update(project: Project, options: UpdateOptions) -> UpdatePlan | None:
    from packaging.version import InvalidVersion, Version

    from .fsutil import transaction
    from .template import template_dir

    record = read_record(project)
    installed = installed_version()
    if options.from_version is not None:
        try:
            Version(options.from_version)
        except InvalidVersion:
            raise PiperackError(f"--from-version {options.from_version!r} is not a version") from None
    recorded = options.from_version or (record.version if record else None)
    if recorded is None:
        raise PiperackError(
            f"{RECORD} records no piperack version: pass --from-version X, the piperack "
            "version that made the project (see its requirements-dev.txt)"
        )
    if Version(installed) < Version(recorded):
        raise PiperackError(
            f"made with piperack {recorded}, but the older {installed} is installed: "
            "upgrade piperack first (pip install -r requirements-dev.txt)"
        )
    if Version(installed) == Version(recorded) and options.from_source is None:
        ui.info(f"already at piperack {installed}: nothing to update")
        return None
    answers = dict(record.answers) if record and record.answers else inferred_answers(project)
    with tempfile.TemporaryDirectory(prefix="piperack-update-") as tmp:
        work = Path(tmp)
        ui.info(f"fetching the piperack {recorded} template …")
        base_template = (
            template_from(options.from_source, work) if options.from_source else download_template(recorded, work)
        )
        theirs_template = template_dir()
        theirs_answers = ask_new_questions(theirs_template, answers) if options.ask else answers
        ui.info(f"rendering piperack {recorded} and {installed} with the project's answers …")
        base = render(base_template, answers, work / "render-base", f"piperack {recorded}")
        theirs = render(theirs_template, theirs_answers, work / "render-new", f"piperack {installed}")
    plan = plan_update(project, base, theirs, recorded, installed)
    touched = [c.path for c in plan.writes()]
    if not (options.dry_run or options.diff):
        dirty = _dirty(project, touched)
        if dirty is None:
            ui.warn("not a git work tree: cannot check for uncommitted changes (commit before updating)")
        elif dirty and not options.allow_dirty:
            raise PiperackError(
                f"uncommitted changes in {len(dirty)} file(s) the update would touch: "
                f"{', '.join(dirty[:5])}{' …' if len(dirty) > 5 else ''} "
                "(commit or stash them, or pass --allow-dirty)"
            )
    _report(plan, options.dry_run or options.diff)
    if options.diff:
        _diff(plan)
    if options.dry_run or options.diff:
        return plan
    with transaction(project.root) as tx:
        for change in plan.writes():
            if change.action == "delete":
                tx.remove(change.path)
            else:
                tx.change(change.path, change.data)
    _next_steps(plan)
    conflicts = plan.conflicts()
    if conflicts:
        raise PiperackError(
            f"updated to piperack {installed} with conflicts in {len(conflicts)} file(s): "
            f"{', '.join(c.path for c in conflicts)}: resolve them (<<<<<<< markers), then commit"
        )
    return plan


def _report(plan: UpdatePlan, dry_run: bool) -> None:
    versions = f"piperack {plan.base_version} to {plan.new_version}"
    ui.info(f"dry run: nothing written. Updating from {versions} would:" if dry_run else f"updating from {versions}:")
    if not plan.changes:
        ui.info("  (no template file changes)")
    for change in plan.changes:
        note = f"  ({change.note})" if change.note else ""
        ui.info(f"  {change.action:<8}  {change.path}{note}")


def _next_steps(plan: UpdatePlan) -> None:
    counts = {action: sum(1 for c in plan.changes if c.action == action) for action in ACTIONS}
    summary = ", ".join(f"{n} {action}" for action, n in counts.items() if n) or "no file changed"
    ui.info(f"updated to piperack {plan.new_version}: {summary}; {RECORD} records {plan.new_version}")
    written = {c.path for c in plan.writes()}
    if "requirements.in" in written:
        ui.info("next: requirements.in changed: run `invoke build-reqs`")
    if REQUIREMENTS_DEV in written:
        ui.info(f"next: run `pip install -r {REQUIREMENTS_DEV}` (piperack=={plan.new_version})")
    ui.info("review with `git diff`, run `invoke test`, then commit")
