"""The pull record as a lock: what a name or manifest entry means, the version it pins, the sha256 check.

Which recorded module a manifest entry or a name means, the exact version a locked entry installs,
and the check that the archive behind a recorded version is still the one recorded (its sha256)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PiperackError


@dataclass
class Pulled:
    """One entry of [tool.piperack.pulled], with what its fields imply."""

    module: str  # module path under the project package, e.g. pipelines.common
    record: dict

    @property
    def name(self) -> str:
        """The module's own name, as pulled (the alias when there was one)."""
        return self.module.rpartition(".")[2]

    @property
    def destination(self) -> str:
        return self.module.rpartition(".")[0]

    @property
    def version(self) -> str:
        return self.record.get("version", "")

    @property
    def source(self) -> str:
        return self.record.get("source", "")

    @property
    def requirement(self):
        """(distribution name, SpecifierSet) when it came from an index, else None."""
        return index_requirement(self.source) if self.record.get("index") else None

    @property
    def package(self) -> str | None:
        """Its distribution name: recorded, else read from an index requirement."""
        if self.record.get("package"):
            return self.record["package"]
        req = self.requirement
        return req[0] if req else None


def index_requirement(source: str):
    """``shared~=0.1`` -> ("shared", SpecifierSet("~=0.1")); None for anything that is not a name
    with an optional PEP 440 range (a path, a URL)."""
    from packaging.requirements import InvalidRequirement, Requirement

    from ..fetch import classify

    if classify(source) != "index":
        return None
    try:
        req = Requirement(source)
    except InvalidRequirement:
        return None
    return req.name, req.specifier


def specifier_of(source: str) -> str | None:
    """The PEP 440 range an index source names (``~=0.1``, ``>=0.2,<1``: as written), or None."""
    req = index_requirement(source)
    if not req or not str(req[1]):
        return None
    text = source.strip()
    written = text[len(req[0]) :].strip() if text.startswith(req[0]) else ""
    return written if written.replace(" ", "") and _same_range(written, req[1]) else str(req[1])


def _same_range(text: str, specifier) -> bool:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(text) == specifier
    except InvalidSpecifier:
        return False


def pulled(project) -> list[Pulled]:
    """Every record, checked where a lock relies on it: the module path, the version, the sha256, the env."""
    import re

    from packaging.version import InvalidVersion, Version

    from ..project import check_module_path
    from .record import read_pulled

    entries = []
    for module, record in read_pulled(project).items():
        where = f'{project.pyproject.name} [tool.piperack.pulled] "{module}"'
        try:
            check_module_path(module)
        except PiperackError:
            raise PiperackError(f"{where}: not a module path such as 'pipelines.ingest'") from None
        try:
            Version(record.get("version", ""))
        except InvalidVersion:
            raise PiperackError(f"{where}: version {record.get('version')!r} is not a PEP 440 version") from None
        if record.get("sha256") and not re.fullmatch(r"[0-9a-f]{64}", record["sha256"]):
            raise PiperackError(f"{where}: sha256 must be 64 lowercase hexadecimal digits")
        if record.get("env"):
            project.env_dir(record["env"], must_exist=False)
        entries.append(Pulled(module, record))
    return entries


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def find(project, name: str) -> Pulled:
    """The pulled module ``name`` means: its module path, its name as pulled (the alias), or its
    package name. None or several: one line listing what is pulled."""
    entries = pulled(project)
    matches = [p for p in entries if name in (p.module, p.name)]
    if not matches:
        matches = [p for p in entries if p.package and _canonical(p.package) == _canonical(name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(p.module for p in entries)) or "nothing yet"
    if not matches:
        raise PiperackError(f"{name}: not a pulled module or package (pulled: {known})")
    raise PiperackError(
        f"{name}: names {len(matches)} pulled modules ({', '.join(p.module for p in matches)}); give the module path"
    )


def for_job(entries: list[Pulled], job, stripped: str) -> Pulled | None:
    """The record a manifest entry made: the same source (credentials stripped); else, the entry's
    range or file having changed since, the same package on an index, or the same alias. When the
    entry sets an alias, the record's name must be it."""
    named = [p for p in entries if not job.alias or p.name == job.alias]
    same = [p for p in named if p.source == stripped]
    if not same:
        req = index_requirement(job.subject)
        if req:
            wanted = _canonical(req[0])
            same = [p for p in named if p.record.get("index") and p.package and _canonical(p.package) == wanted]
        else:
            same = [p for p in named if not p.record.get("index") and (job.alias or _same_package(job.subject, p))]
    return same[0] if len(same) == 1 else None


def _same_package(subject: str, entry: Pulled) -> bool:
    """Whether an archive's file name (``<name>-<version>.tar.gz``) names the package ``entry`` pulled."""
    from urllib.parse import urlsplit

    from packaging.utils import InvalidSdistFilename, parse_sdist_filename

    try:
        name, _ = parse_sdist_filename(urlsplit(subject).path.rpartition("/")[2])
    except InvalidSdistFilename:
        return False
    return bool(entry.package) and _canonical(entry.package) == name


def allows(job, entry: Pulled) -> bool:
    """Whether a manifest entry still asks for the recorded version: the same source, or a range that
    holds it (a range changed so that it does not is resolved afresh)."""
    from packaging.version import Version

    from ..download import strip_credentials

    if strip_credentials(job.subject) == entry.source:
        return True
    req = index_requirement(job.subject)
    return bool(req and entry.record.get("index")) and req[1].contains(Version(entry.version), prereleases=True)


def check_archive(digest: str, recorded_sha256: str | None, what: str, label: str) -> None:
    """Refuse an archive whose sha256 is not the one recorded for its version (``what``: "shared 0.1.0";
    ``label``, when given, starts the line)."""
    want = (recorded_sha256 or "").strip().lower()
    if want and digest != want:
        raise PiperackError(
            f"{label + ': ' if label else ''}the archive behind the recorded {what} changed "
            f"(sha256 {digest[:16]}…, recorded {want[:16]}…); refused"
        )


def lock_jobs(project, jobs: list, upgrade: bool) -> tuple[list, list[tuple[Pulled, object]]]:
    """``pull --all`` with the record as its lock: (jobs to pull, (record, job) of the entries
    already in the project). An entry whose module is pulled and present is kept as it is; one
    recorded but absent installs exactly its recorded version (the sha256 checked) while the
    entry still allows it; a new entry takes the newest version its range allows. With
    ``upgrade``, present entries are left to the merge."""
    from ..download import strip_credentials

    entries = pulled(project)
    todo, present = [], []
    for job in jobs:
        entry = for_job(entries, job, strip_credentials(job.subject))
        if entry is None:
            todo.append(job)
            continue
        if (project.module_dir(entry.module)).is_dir():
            present.append((entry, job))
            continue
        if not upgrade and allows(job, entry):
            job.locked = entry.version
            job.locked_sha256 = entry.record.get("sha256")
            job.index_url = entry.record.get("index") or job.index_url
        todo.append(job)
    return todo, present
