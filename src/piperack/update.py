"""``invoke update-project`` / ``piperack update``: bring a project's template files up to the
installed piperack without losing the team's edits.

Three versions of every template-owned file:

- **base**: the template of the piperack version recorded in .piperack.json, rendered with the
  recorded answers. It comes from ``piperack==<recorded>`` fetched with pip (``pip download
  --no-deps --only-binary :all:``, so pip's index, find-links and pip.conf apply and nothing is
  built), or from ``--from`` (a kit checkout, a wheel or an sdist, as a path or a URL), read into
  memory with the archive checks pull applies.
- **theirs**: the template of the installed piperack, rendered with the same answers (questions
  new in it take their defaults, or are asked with ``--ask``).
- **ours**: the project as it is.

Both templates are rendered by ``template.render``, this piperack's code: no hook or local
extension of either template runs (docs/updating.md, "No template code runs").

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
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import ui
from .errors import PiperackError, first_line
from .merge import check_dirty, listed_note, merge_one, unified_diff, warn_dirty
from .options import UpdateOptions
from .project import Project
from .template import MAX_TEMPLATE_BYTES, TEMPLATE_FILE, read_template_folder, render, template_dir

RECORD = ".piperack.json"
REQUIREMENTS_DEV = "requirements-dev.txt"
COMMAND = "invoke update-project"
MAX_RECORD_BYTES = 8 * 1024 * 1024  # far above any answers, far below what would hurt to read

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
    # Never the template's, whatever an old template holds: git's own files (an old template
    # matching .git/config byte for byte would otherwise have it "dropped"), virtualenvs, journals.
    ".git/**",
    ".venv/**",
    "venv/**",
)
_PIN = re.compile(r"^piperack\s*==\s*[^\s;#]+", re.MULTILINE)
ACTIONS = ("add", "update", "merge", "conflict", "keep", "delete")
TOUCHED = "the update would touch"  # the files the uncommitted-changes refusal speaks of

# Option help, shared by `invoke update-project` and `piperack update`.


# -- the record -------------------------------------------------------------------------------------


@dataclass
class Record:
    version: str | None
    answers: dict


def read_record(project: Project) -> Record | None:
    """.piperack.json, checked as untrusted input; None when the project has none.

    A link, a folder, a file over MAX_RECORD_BYTES, nesting deeper than JSON can be read, a
    version PEP 440 does not know: one line naming the file."""
    import stat

    from packaging.version import InvalidVersion, Version

    path = project.root / RECORD
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PiperackError(f"{RECORD}: could not be read ({first_line(exc)})") from None
    if stat.S_ISLNK(info.st_mode):
        raise PiperackError(f"{RECORD}: a symbolic link; piperack reads its record only from a plain file")
    if not stat.S_ISREG(info.st_mode):
        raise PiperackError(f"{RECORD}: not a plain file")
    if info.st_size > MAX_RECORD_BYTES:
        raise PiperackError(f"{RECORD}: {info.st_size} bytes, over the {MAX_RECORD_BYTES}-byte limit of a record")
    from .fsutil import read_confined

    try:
        data = json.loads((read_confined(project.root, RECORD) or b"")[: MAX_RECORD_BYTES + 1].decode("utf-8"))
    except RecursionError:
        raise PiperackError(f"{RECORD}: nested too deeply to be a record") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PiperackError(f"{RECORD}: not valid JSON ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise PiperackError(f"{RECORD}: expected an object with piperack_version and answers")
    version = data.get("piperack_version")
    if version is not None:
        try:
            version = str(Version(str(version)))
        except (InvalidVersion, TypeError):
            raise PiperackError(f"{RECORD}: piperack_version {_shown(version)} is not a version") from None
    answers = data.get("answers", {})
    if not isinstance(answers, dict):
        raise PiperackError(f"{RECORD}: answers must be an object of question = answer")
    for key, value in answers.items():
        if not isinstance(value, (str, bool)) or key.startswith("_"):
            raise PiperackError(f"{RECORD}: answer {_shown(key)} must be a string or true/false, got {_shown(value)}")
    return Record(version=version, answers=answers)


def _shown(value) -> str:
    """A value of a hostile record for a one-line message: repr, shortened."""
    try:
        text = repr(value)
    except RecursionError:
        return "a deeply nested value"
    return text if len(text) <= 80 else text[:77] + "..."


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
    from .fsutil import read_confined

    readme, path = b"", project.root / "README.md"
    if path.is_file() and not path.is_symlink():  # never through a link, never a fifo
        try:
            readme = read_confined(project.root, "README.md") or b""
        except (PiperackError, OSError):
            pass
    if readme:
        first = readme[:4096].decode("utf-8", errors="replace").splitlines()[:1]
        if first and first[0].startswith("# "):
            answers["project_name"] = first[0][2:].strip()
    answers["include_example"] = (project.package_dir / "pipelines" / "ingest").is_dir()
    return answers


def installed_version() -> str:
    from importlib.metadata import version

    return version("piperack")


def same_version(a: str, b: str) -> bool:
    """PEP 440 equality: 0.2 is 0.2.0."""
    from packaging.version import Version

    return Version(a) == Version(b)


def check(project: Project) -> str:
    """``--check``: a line saying the project is up to date; PiperackError (exit 1) when it is not."""
    from .fsutil import interrupted_runs

    if "update-project" in interrupted_runs(project.root):  # its record may be the new one already
        raise PiperackError(
            f"an earlier `{COMMAND}` was killed midway: run {COMMAND} again (it puts the project back first)"
        )
    record = read_record(project)
    installed = installed_version()
    if record is None or record.version is None:
        raise PiperackError(
            f"{RECORD} records no piperack version ({installed} is installed): run {COMMAND} --from-version X"
        )
    if not same_version(record.version, installed):
        raise PiperackError(f"made with piperack {record.version}, {installed} is installed: run {COMMAND}")
    return f"made with piperack {installed}, the installed version: up to date"


# -- templates ----------------------------------------------------------------------------------------
#
# Both versions are rendered by template.render: the template is data read into memory, rendered in
# a sandbox with this piperack's own extensions and post-generation rules. An old template's hooks
# and local_extensions.py are never run, whatever it is: a folder, a wheel or an sdist.


def _wheel_template(wheel: Path, label: str) -> dict:
    """The template a piperack wheel carries (piperack/template/), read with the archive checks."""
    from .archive import read_zip
    from .template import template_files

    files = read_zip(wheel, label, max_bytes=MAX_TEMPLATE_BYTES)
    prefix = ("piperack", "template")
    inside = {
        PurePosixPath(*p.parts[2:]): data for p, data in files.items() if p.parts[:2] == prefix and len(p.parts) > 2
    }
    if PurePosixPath(TEMPLATE_FILE) not in inside:
        raise PiperackError(f"{label}: carries no piperack template (piperack/template/{TEMPLATE_FILE})")
    return template_files(inside, label)


def _sdist_template(sdist: Path, label: str) -> dict:
    """The template in a piperack sdist (the kit root at its top), read with pull's archive checks."""
    from .archive import read_archive
    from .template import template_files

    _top, files = read_archive(sdist, label=label, max_bytes=MAX_TEMPLATE_BYTES)
    return template_files(files, label)


def template_from(source: str) -> dict:
    """``--from``: a kit checkout, or a piperack wheel or sdist, as a path or any fsspec URL; the
    template's files, checked and in memory (a download goes to a temporary folder, removed)."""
    from .fetch import classify, fetch
    from .template import read_template_folder

    label = f"--from {source}"
    if classify(source) == "url":
        with tempfile.TemporaryDirectory(prefix="piperack-update-") as tmp:
            return _archive_template(fetch(source, Path(tmp), max_bytes=MAX_TEMPLATE_BYTES).path, label)
    path = Path(source).expanduser().absolute()
    if path.is_dir():
        if not (path / TEMPLATE_FILE).is_file():
            raise PiperackError(f"{label}: no {TEMPLATE_FILE} there (expected a piperack kit checkout)")
        return read_template_folder(path, label)
    if not path.is_file():
        raise PiperackError(f"{label}: no such file or folder")
    return _archive_template(path, label)


def _archive_template(path: Path, label: str) -> dict:
    if path.name.endswith(".whl"):
        return _wheel_template(path, label)
    if path.name.endswith((".tar.gz", ".tgz")):
        return _sdist_template(path, label)
    raise PiperackError(f"{label}: expected a kit checkout, a .whl or a .tar.gz of piperack")


def download_template(version: str) -> dict:
    """The template of ``piperack==version`` from the index pip is configured with (a wheel only)."""
    with tempfile.TemporaryDirectory(prefix="piperack-update-") as tmp:
        return _download_template(version, Path(tmp))


def _download_template(version: str, work: Path) -> dict:
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
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)
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
    return _wheel_template(wheels[0], wheels[0].name)


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
        except (EOFError, RuntimeError, ValueError, OSError) as exc:  # closed, or no stdin at all
            if isinstance(exc, BrokenPipeError):
                raise
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
    if path.parts and path.parts[0].startswith(".piperack-backup-"):
        return True
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
    ui.info(f"fetching the piperack {recorded} template …")
    base_files = template_from(options.from_source) if options.from_source else download_template(recorded)
    theirs_template = template_dir()
    theirs_answers = ask_new_questions(theirs_template, answers) if options.ask else answers
    ui.info(f"rendering piperack {recorded} and {installed} with the project's answers …")
    base = render(base_files, answers, recorded, f"piperack {recorded}")
    theirs = render(read_template_folder(theirs_template), theirs_answers, installed, f"piperack {installed}")
    plan = plan_update(project, base, theirs, recorded, installed)
    # Every file it would write, whatever it does to it: the refusal a real run gives (nothing
    # written), the marks and the closing warning of a preview.
    preview = options.dry_run or options.diff
    touched = [c.path for c in plan.writes()]
    dirty = check_dirty(project.root, touched, TOUCHED, "updating", preview=preview, allow_dirty=options.allow_dirty)
    _report(plan, preview, dirty)
    if options.diff:
        _diff(plan)
    if preview:
        warn_dirty(dirty, TOUCHED, options.allow_dirty)
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


def _report(plan: UpdatePlan, dry_run: bool, dirty: list[str]) -> None:
    versions = f"piperack {plan.base_version} to {plan.new_version}"
    ui.info(f"dry run: nothing written. Updating from {versions} would:" if dry_run else f"updating from {versions}:")
    if not plan.changes:
        ui.info("  (no template file changes)")
    for change in plan.changes:
        ui.info(f"  {change.action:<8}  {change.path}{listed_note(change.note, change.path in dirty)}")


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
