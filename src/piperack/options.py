"""Every verb's options, their defaults and their checks, in one place.

The invoke tasks and the ``piperack`` command build the same option objects (``PackageOptions``,
``PullOptions``, ``UpdateOptions``) and hand them to the verb; package and pull turn theirs into
``Job``s, one per module or source, from the command line or from the [tool.piperack.package] /
[tool.piperack.pull] manifests in pyproject.toml, checked before anything is fetched or written.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import PiperackError
from .project import Project, check_identifier, check_module_path

BASE_ENV = "base"  # the config env package and pull read and write parameters in, unless --env
PACKAGE_DESTINATION = "dist"  # where package writes its archives (and publish takes them), unless --destination
RUN_ENV = "local"  # the config env run, docker-run and airflow merge over conf/base, unless --env

# The options each verb takes, on the command line and in its manifest (``-`` spelled ``_``).
OPTIONS = {
    "package": {"alias", "destination", "env"},
    "pull": {"alias", "destination", "env", "fs_args", "force", "sha256", "pre"},
}
_STRING_OPTIONS = {"alias", "destination", "env", "fs_args", "sha256"}


@dataclass
class Job:
    """One unit of work: a module to package, or a source to pull, with its options."""

    # What the job works on: package, a module path such as pipelines.ingest; pull, a source (a path,
    # URL or package name).
    subject: str
    alias: str | None = None
    destination: str | None = None
    env: str = BASE_ENV
    label: str = ""  # how errors name this job ("--all" jobs name their manifest key)
    # pull only
    fs_args: str | None = None
    force: bool = False
    sha256: str | None = None
    base: Path | None = None  # where relative paths (source, fs-args) are resolved
    pre: bool = False  # a version range on an index may take pre-releases
    index_url: str | None = None  # the one index to ask (the recorded one, for a locked entry)
    locked: str | None = None  # the recorded version a locked ``--all`` entry installs exactly
    locked_sha256: str | None = None  # and the sha256 recorded for it


def _nested_key(key: str, value: dict, allowed: set[str]) -> str | None:
    """If ``value`` looks like a table TOML made from an unquoted dotted key, the key it meant."""
    for sub, subvalue in value.items():
        if sub not in allowed and sub.replace("-", "_") not in allowed:
            if isinstance(subvalue, dict):
                inner = _nested_key(sub, subvalue, allowed)
                return f"{key}.{inner}" if inner else f"{key}.{sub}"
    return None


def read_manifest(project: Project, section: str, allowed: set[str]) -> dict[str, dict]:
    """A mapping key -> options from [tool.piperack.<section>], option names with ``-`` read as ``_``.

    Errors name the key: a missing or empty section, an unknown option, and an unquoted dotted key
    (``pipelines.ingest = {}`` is a nested table in TOML: it must be written ``"pipelines.ingest" = {}``).
    """
    where = f"{project.pyproject.name} [tool.piperack.{section}]"
    table = project.tool(section)
    if not table:
        raise PiperackError(
            f"{where} is missing or empty: add entries like "
            + ('"pipelines.ingest" = {}' if section == "package" else '"dist/ingest-0.1.0.tar.gz" = {}')
        )
    if not isinstance(table, dict):
        raise PiperackError(f"{where} must be a table of entries")
    entries: dict[str, dict] = {}
    for key, value in table.items():
        if not isinstance(value, dict):
            raise PiperackError(f'{where} "{key}": expected a table of options such as ' + "{}" + f", got {value!r}")
        meant = _nested_key(key, value, allowed)
        if meant:
            raise PiperackError(
                f'{where}: "{meant}" became a nested table because its key is not quoted; '
                f'write it as "{meant}" = ' + "{...}"
            )
        options = {}
        for name, option in value.items():
            norm = name.replace("-", "_")
            if norm not in allowed:
                raise PiperackError(f'{where} "{key}": unknown option {name!r} (allowed: {", ".join(sorted(allowed))})')
            options[norm] = option
        entries[key] = options
    return entries


def jobs_from_manifest(project: Project, verb: str) -> list[Job]:
    """The jobs of ``[tool.piperack.<verb>]``; option types are checked here, values by the verb."""
    where = f"{project.pyproject.name} [tool.piperack.{verb}]"
    jobs = []
    for key, options in read_manifest(project, verb, allowed=OPTIONS[verb]).items():
        for name, value in options.items():
            if name in _STRING_OPTIONS and (not isinstance(value, str) or not value):
                raise PiperackError(f'{where} "{key}": option {name!r} must be a non-empty string, got {value!r}')
            if name in ("force", "pre") and not isinstance(value, bool):
                raise PiperackError(f'{where} "{key}": option {name!r} must be true or false, got {value!r}')
        options.setdefault("env", BASE_ENV)
        jobs.append(
            Job(
                subject=key,
                label=f'[tool.piperack.pull] "{key}"' if verb == "pull" else key,
                base=project.root,
                **options,
            )
        )
    return jobs


# -- package ----------------------------------------------------------------------------------------


@dataclass
class PackageOptions:
    """`invoke package MODULE | --all [--alias A] [--destination D] [--env E]`."""

    module: str | None = None
    all_: bool = False
    alias: str | None = None
    destination: str | None = None
    env: str | None = None

    def jobs(self, project: Project) -> list[Job]:
        """One job for the module, or one per manifest entry with --all (each with its own options)."""
        if self.all_:
            if self.module or self.alias or self.destination or self.env:
                raise PiperackError(
                    "--all packages every entry of [tool.piperack.package] with its own options; "
                    "give either a module path or --all, without --alias/--destination/--env"
                )
            return jobs_from_manifest(project, "package")
        if not self.module:
            raise PiperackError("which module? give a module path such as 'pipelines.ingest', or --all")
        return [
            Job(
                subject=self.module,
                alias=self.alias or None,
                destination=self.destination or None,
                env=self.env or BASE_ENV,
                label=self.module,
            )
        ]


def resolve_destination(project: Project, destination: str | None) -> Path:
    """The folder of package's archives: relative paths are relative to the project root."""
    raw = destination if destination not in (None, "") else PACKAGE_DESTINATION
    if not isinstance(raw, str):
        raise PiperackError(f"destination {raw!r}: expected a folder path")
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else project.root / path
    if path.exists() and not path.is_dir():
        raise PiperackError(f"destination {raw!r} exists and is not a folder")
    return path


def package_folders(project: Project) -> list[Path]:
    """Where package writes archives: dist/ and each [tool.piperack.package] entry's destination."""
    folders = [resolve_destination(project, None)]
    if project.tool("package"):
        for options in read_manifest(project, "package", OPTIONS["package"]).values():
            folder = resolve_destination(project, options.get("destination"))
            if folder not in folders:
                folders.append(folder)
    return folders


# -- publish ----------------------------------------------------------------------------------------

PUBLISH_KEYS = {"repository_url": "repository-url", "index_url": "index-url"}


@dataclass
class PublishOptions:
    """`invoke publish [--repository-url URL] [--index-url URL] [--dry-run]`; the URLs default to
    [tool.piperack.publish] in pyproject.toml, then $TWINE_REPOSITORY_URL (never to PyPI)."""

    repository_url: str | None = None
    index_url: str | None = None
    dry_run: bool = False

    def resolved(self, project: Project, environ) -> tuple[str, str]:
        """(upload URL, simple-index URL), checked. The index defaults to <repository-url>/simple/."""
        where = f"{project.pyproject.name} [tool.piperack.publish]"
        table = project.tool("publish", default={})
        if not isinstance(table, dict):
            raise PiperackError(f'{where} must be a table (repository-url = "https://…")')
        settings = {}
        for key, value in table.items():
            norm = key.replace("-", "_")
            if norm not in PUBLISH_KEYS:
                raise PiperackError(f"{where}: unknown key {key!r} (allowed: repository-url, index-url)")
            if not isinstance(value, str) or not value.strip():
                raise PiperackError(f"{where} {key}: expected a URL string, got {value!r}")
            settings[norm] = value.strip()
        repository = self.repository_url or settings.get("repository_url") or environ.get("TWINE_REPOSITORY_URL")
        if not repository:
            raise PiperackError(
                "no package index to publish to: give --repository-url URL or set repository-url in "
                f"{where} (piperack never defaults to pypi.org)"
            )
        index = self.index_url or settings.get("index_url") or repository.rstrip("/") + "/simple/"
        for what, url in (("repository-url", repository), ("index-url", index)):
            if not re.match(r"^https?://[^/]", url):
                raise PiperackError(f"{what} {_shown_url(url)!r}: expected an http:// or https:// URL")
        return repository, index


def _shown_url(url: str) -> str:
    from .download import strip_credentials

    return strip_credentials(url)


# -- pull -------------------------------------------------------------------------------------------


@dataclass
class PullOptions:
    """`invoke pull SOURCE | --all` and its options (see the task's help for each)."""

    source: str | None = None
    all_: bool = False
    alias: str | None = None
    destination: str | None = None
    env: str | None = None
    fs_args: str | None = None
    force: bool = False
    dry_run: bool = False
    sha256: str | None = None
    index_url: str | None = None
    allow_conflicts: bool = False
    allow_direct_references: bool = False
    pre: bool = False
    upgrade: bool = False  # merge a newer version into a pulled module (source: its name), or --all of them
    to: str | None = None  # --upgrade: this version (or archive) instead of the newest in range
    diff: bool = False  # --upgrade: show the merge as a diff; write nothing
    resolved: bool = False  # --upgrade NAME --to V: record V, whose conflicts the team resolved; merge nothing
    allow_dirty: bool = False  # --upgrade: merge even into files with uncommitted changes

    def check_upgrade(self) -> None:
        """--upgrade's options: NAME or --all; --to, --diff and --resolved only with it; nothing that
        moves the module."""
        if (self.to is not None or self.diff or self.resolved or self.allow_dirty) and not self.upgrade:
            raise PiperackError("--to, --diff, --resolved and --allow-dirty go with --upgrade NAME")
        if not self.upgrade:
            return
        if self.resolved and (self.all_ or self.to is None):
            raise PiperackError(
                "--resolved records the version whose conflicts you resolved: give it as --upgrade NAME --to VERSION"
            )
        moved = [
            flag
            for flag, value in (
                ("--alias", self.alias),
                ("--destination", self.destination),
                ("--env", self.env),
                ("--fs-args", self.fs_args),
                ("--sha256", self.sha256),
            )
            if value is not None
        ]
        if moved or self.force:
            raise PiperackError(
                f"--upgrade merges into the module where it was pulled; do not combine it with "
                f"{', '.join(moved + (['--force'] if self.force else []))}"
            )
        if self.all_ and (self.source or self.to is not None or self.pre):
            raise PiperackError(
                "--all --upgrade takes each entry's range from [tool.piperack.pull]: give no NAME, --to or --pre"
            )
        if not self.all_ and not self.source:
            raise PiperackError(
                "--upgrade NAME: give the pulled module (its name as pulled) or its package name, or --all"
            )

    def jobs(self, project: Project) -> list[Job]:
        """The jobs of this pull, each checked: one for the source, or one per manifest entry."""
        todo = self._jobs(project)
        for job in todo:
            validate_job(project, job)
        return todo

    def _jobs(self, project: Project) -> list[Job]:
        if self.all_ and self.source:
            raise PiperackError("give either a source or --all, not both")
        if self.all_:
            given = (self.alias, self.destination, self.env, self.fs_args, self.sha256)
            if any(v is not None for v in given) or self.force or self.pre:
                raise PiperackError(
                    "--all takes its options from [tool.piperack.pull]; do not combine it with other options"
                )
            todo = jobs_from_manifest(project, "pull")
            for job in todo:
                job.index_url = self.index_url
            return todo
        if not self.source:
            raise PiperackError("give a source (a .tar.gz path, an fsspec URL or a package name) or --all")
        return [
            Job(
                subject=self.source,
                alias=self.alias,
                destination=self.destination,
                env=self.env or BASE_ENV,
                fs_args=self.fs_args,
                force=bool(self.force),
                sha256=self.sha256,
                base=Path.cwd(),
                pre=bool(self.pre),
                index_url=self.index_url,
            )
        ]


def normalise_destination(value: str, what: str = "--destination") -> str:
    """``pipelines``, ``pipelines.shared`` or ``pipelines/shared`` -> dotted; refuses anything else."""
    if not isinstance(value, str):
        raise PiperackError(f"invalid {what} {value!r}: expected a module path such as 'pipelines'")
    text = value.strip().strip("/")
    if "/" in value:
        if value.startswith("/") or any(part in ("", ".", "..") for part in value.strip("/").split("/")):
            raise PiperackError(
                f"invalid {what} {value!r}: expected a module path such as 'pipelines' inside the project package"
            )
        text = text.replace("/", ".")
    check_module_path(text, what=what)
    if any(not part.isascii() or keyword.iskeyword(part) for part in text.split(".")):
        raise PiperackError(f"invalid {what} {value!r}: every part must be a Python identifier")
    return text


def validate_job(project, job: Job) -> None:
    """Check options before anything is fetched or written; errors name the option and entry."""
    where = f" ({job.label})" if job.label else ""
    if job.alias is not None:
        if not isinstance(job.alias, str):
            raise PiperackError(f"invalid alias {job.alias!r}{where}: expected a Python identifier")
        check_identifier(job.alias, what=f"alias{where}")
    if job.destination is not None:
        job.destination = normalise_destination(job.destination, f"destination{where}")
    if not isinstance(job.env, str):
        raise PiperackError(f"invalid env {job.env!r}{where}")
    project.env_dir(job.env, must_exist=False)  # refuses ../x, /etc, …
    if not isinstance(job.force, bool):
        raise PiperackError(f"invalid force {job.force!r}{where}: expected true or false")
    if job.sha256 is not None and (
        not isinstance(job.sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", job.sha256.strip())
    ):
        raise PiperackError(f"invalid sha256 {job.sha256!r}{where}: expected 64 hexadecimal digits")
    if job.fs_args is not None and not isinstance(job.fs_args, str):
        raise PiperackError(f"invalid fs-args {job.fs_args!r}{where}: expected the path of a YAML file")


# -- update-project ---------------------------------------------------------------------------------

UPDATE_HELP = {
    "check": "Exit 1 when the project was made with another piperack than the installed one; write nothing (CI).",
    "dry-run": "Print the plan, a line per file (add, update, merge, conflict, keep, delete); write nothing.",
    "diff": "Show what would change as a unified diff; write nothing.",
    "from": "Where the old template comes from: a kit checkout, or a piperack wheel or sdist (path or URL). "
    "Default: piperack==<recorded version> through pip's configured index.",
    "from-version": "The piperack version that made the project, when .piperack.json records none.",
    "allow-dirty": "Update even when files it touches have uncommitted changes.",
    "ask": "Ask the questions the new template added (default: take their defaults).",
}


@dataclass
class UpdateOptions:
    """`invoke update-project` / `piperack update` (UPDATE_HELP says what each does)."""

    check: bool = False
    dry_run: bool = False
    diff: bool = False
    from_source: str | None = None
    from_version: str | None = None
    allow_dirty: bool = False
    ask: bool = False


# -- viz --------------------------------------------------------------------------------------------

VIZ_HELP = {
    "output": "File to write (relative paths: to the project root; - prints it). "
    "Default: build/pipelines.html for html, standard output for mermaid.",
    "format": "html (one self-contained page: no server, no network) or mermaid (flowchart text for "
    "READMEs and pull requests). Default: html.",
    "env": "Config environment: conf/<env>/pipelines.yml and catalogs are merged over conf/base/. Default: local.",
}
