"""``invoke pull --upgrade``: a newer version of a pulled module merged in, keeping the team's edits.

``pull --upgrade NAME [--to VERSION] [--dry-run] [--diff]``, and ``pull --all --upgrade`` for every
pulled manifest entry.

Three versions of every file the module brings (code, tests, parameter files):

- **base**: the recorded version, fetched again by version from the recorded index (or the
  recorded path or URL) and refused unless its sha256 is the recorded one;
- **theirs**: the new version: ``--to`` (a version, or an archive path or URL), else the newest
  its recorded range (``specifier``) allows on the recorded index (pre-releases with ``--pre`` or
  when it was pulled with ``--pre``);
- **ours**: the project's files.

Both archives are placed exactly as a pull places them (``plan.place``: the same alias rename of
imports and parameter files, the same destination and env), so the team's renamed imports are
never a difference. Each file then goes through ``merge.merge_one``; conflicts are written inline
and listed, and the command fails; new requirements go through pull's rules (``finish_plan``); the
record moves to the new version only when nothing conflicted. A file to be merged that holds
uncommitted changes refuses the upgrade before anything is written (``merge.uncommitted``, as
update-project checks), unless ``--allow-dirty``. Everything is planned in memory and written as
one ``fsutil.transaction`` inside pull's write session.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import ui
from ..errors import PiperackError
from ..merge import check_dirty, listed_note, warn_dirty
from ..options import BASE_ENV, Job, PullOptions
from .lock import Pulled, check_archive, find, index_requirement, specifier_of
from .plan import Placement, PullPlan

MERGED = "the upgrade would merge"  # the files the uncommitted-changes refusal speaks of


@dataclass
class Upgrade:
    """One module's upgrade: where from, where to, and what it does to each file."""

    entry: Pulled
    new: Placement | None = None  # None: already at the newest its range allows
    changes: list = field(default_factory=list)  # (rel path, merge.Merged)
    current: dict = field(default_factory=dict)  # rel path -> the project's bytes, for --diff
    resolved: bool = False  # --resolved: nothing merged, the new version recorded

    def conflicts(self) -> list:
        return [rel for rel, merged in self.changes if merged.action == "conflict"]


def upgrade(
    project, options: PullOptions, names: list[str], max_bytes: int | None, manifest: dict | None = None
) -> list[Upgrade]:
    """Plan every named module's upgrade, then write them all (or, with --dry-run/--diff, show them).
    ``manifest``: module -> its [tool.piperack.pull] job (``--all --upgrade``), whose source (a range,
    a file) says where the new version comes from."""
    from ..archive import max_bytes_from_env
    from .plan import finish_plan

    limit = max_bytes if max_bytes is not None else max_bytes_from_env()
    entries = [find(project, name) for name in names]
    if manifest is None:
        manifest = _manifest_jobs(project, entries)
    with tempfile.TemporaryDirectory(prefix="piperack-upgrade-") as tmp:
        ups = [
            _plan_one(project, entry, options, Path(tmp) / str(i), limit, (manifest or {}).get(entry.module))
            for i, entry in enumerate(entries)
        ]
    moving = [up for up in ups if up.new is not None]
    plan = (
        finish_plan(
            project,
            [up.new for up in moving],
            allow_conflicts=options.allow_conflicts,
            allow_direct=options.allow_direct_references,
        )
        if moving
        else PullPlan()
    )
    conflicted = [rel for up in ups for rel in up.conflicts()]
    dirty = _uncommitted_edits(project, ups, options)
    _report(ups, dry_run=options.dry_run or options.diff, dirty=dirty)
    if options.diff:
        _diff(ups)
    if options.dry_run or options.diff:
        warn_dirty(dirty, MERGED, options.allow_dirty)
        return ups
    clean = [up.new for up in moving if not up.conflicts()]
    if conflicted:  # the record (and requirements) move only for the modules that merged cleanly
        plan = (
            finish_plan(project, clean, options.allow_conflicts, options.allow_direct_references)
            if clean
            else PullPlan()
        )
        moving = [up for up in moving if not up.conflicts()]
    _write(project, ups, plan.changes)
    for warning in plan.warnings:
        ui.warn(warning)
    if conflicted:
        up = next(up for up in ups if up.conflicts())
        stays = ", ".join(f"{u.entry.module} {u.entry.version}" for u in ups if u.conflicts())
        to = options.to if options.to and not _is_version(options.to) else up.new.package.version
        then = (
            f"then `invoke pull --upgrade {up.entry.name} --to {to} --resolved` records it"
            if len(ups) == 1
            else "then record each with `invoke pull --upgrade NAME --to VERSION --resolved`"
        )
        for done in moving:
            ui.info(f"upgraded {done.entry.module} to {_label(done.new)}; recorded in {project.pyproject.name}")
        raise PiperackError(
            f"{len(conflicted)} file(s) with conflicts, marked inline (<<<<<<< project … >>>>>>> "
            f"{_label(up.new)}): {', '.join(map(str, conflicted))}; resolve them, {then}; "
            f"the record stays at {stays}"
        )
    for up in moving:
        ui.info(f"upgraded {up.entry.module} to {_label(up.new)}; recorded in {project.pyproject.name}")
    if plan.added_requirements:
        ui.info(f"requirements.in: added {', '.join(plan.added_requirements)}")
        ui.info("next: run `invoke build-reqs` to re-pin requirements.txt")
    return ups


def _uncommitted_edits(project, ups: list[Upgrade], options: PullOptions) -> list[str]:
    """The files the upgrade would merge (the team changed them, upstream too) that hold uncommitted
    changes: merged in place, the team's work would be mixed with upstream's past undoing, so the
    upgrade is refused (as update-project refuses) unless --allow-dirty. Files taken from upstream
    as they are hold nothing of the team's (they equal the recorded version) and never block.
    Refused here, before anything is written; with --dry-run/--diff they are shown instead."""
    merging = [rel for up in ups for rel, m in up.changes if m.action in ("merge", "conflict") and m.data is not None]
    preview = options.dry_run or options.diff
    return check_dirty(project.root, merging, MERGED, "upgrading", preview=preview, allow_dirty=options.allow_dirty)


def _manifest_jobs(project, entries: list[Pulled]) -> dict:
    """module -> the [tool.piperack.pull] entry that pulled it, when the manifest has one: its range
    (or file) is what an upgrade follows."""
    from ..download import strip_credentials
    from ..options import jobs_from_manifest, validate_job
    from .lock import for_job, pulled

    if not project.tool("pull"):
        return {}
    jobs = jobs_from_manifest(project, "pull")
    every = pulled(project)
    found = {}
    for job in jobs:
        validate_job(project, job)
        entry = for_job(every, job, strip_credentials(job.subject))
        if entry is not None:
            found[entry.module] = job
    return {e.module: found[e.module] for e in entries if e.module in found}


def _label(placement: Placement) -> str:
    return f"{placement.package.dist_name} {placement.package.version}"


def _fetch_placed(project, entry: Pulled, source: str, work: Path, limit: int, **fetch_args) -> Placement:
    """An archive fetched, checked, read and placed where ``entry`` lives, renamed as it was."""
    from ..archive import read_archive
    from ..fetch import fetch
    from .plan import place
    from .read import Staged, read_package

    fetch_args.setdefault("base", project.root)  # a recorded relative path: from the project root
    fetched = fetch(source, work, max_bytes=limit, **fetch_args)
    if fetch_args.get("exact") == entry.version and fetch_args.get("exact"):
        check_archive(fetched.sha256, entry.record.get("sha256"), f"version {entry.version}", entry.module)
    top, files = read_archive(fetched.path, label=fetched.source, max_bytes=limit)
    package = read_package(Staged(top, files), fetched.source)
    env = entry.record.get("env") or BASE_ENV
    job = Job(
        subject=source,
        alias=entry.name,
        destination=entry.destination,
        env=env,
        force=True,
        label=entry.module,
        pre=bool(entry.record.get("pre")),
    )
    placement = place(project, job, package, fetched.source, fetched.sha256)
    placement.index = fetched.index
    if fetched.kind == "index":
        placement.specifier = specifier_of(fetched.source)
    return placement


def _base(project, entry: Pulled, work: Path, limit: int) -> Placement:
    """The recorded version, fetched again from where it came from and checked against its sha256."""
    if entry.record.get("index"):
        placed = _fetch_placed(
            project, entry, entry.source, work, limit, index_url=entry.record["index"], exact=entry.version
        )
    else:
        placed = _fetch_placed(project, entry, entry.source, work, limit)
        check_archive(placed.sha256, entry.record.get("sha256"), f"version {entry.version}", entry.module)
    if placed.package.version != entry.version:
        raise PiperackError(
            f"{entry.module}: {entry.source} now holds version {placed.package.version}, "
            f"not the recorded {entry.version}; refused"
        )
    return placed


def _theirs(project, entry: Pulled, options: PullOptions, work: Path, limit: int, job=None) -> Placement | None:
    """The new version (None: the manifest entry asks for the file it was pulled from)."""
    from ..download import strip_credentials

    to = options.to
    if to is not None and not _is_version(to):
        return _fetch_placed(project, entry, to, work, limit, base=Path.cwd())
    if to is None and job is not None and strip_credentials(job.subject) != entry.source:  # the entry changed
        fetch_args = {"base": job.base, "pre": job.pre or options.pre or _is_pre_release(entry.version)}
        if index_requirement(job.subject):
            fetch_args["index_url"] = options.index_url or entry.record.get("index")
        return _fetch_placed(project, entry, job.subject, work, limit, **fetch_args)
    if job is not None and not entry.record.get("index"):
        return None
    if not entry.record.get("index"):
        raise PiperackError(
            f"{entry.module}: pulled from {entry.source}, not from a package index: give the new archive "
            "with --to PATH_OR_URL"
        )
    if to is not None:
        from packaging.version import InvalidVersion, Version

        try:
            to = str(Version(to))
        except InvalidVersion:
            raise PiperackError(f"--to {to!r}: expected a version (such as 0.2.0) or an archive path or URL") from None
    return _fetch_placed(
        project,
        entry,
        entry.source,
        work,
        limit,
        index_url=options.index_url or entry.record["index"],
        pre=options.pre or bool(entry.record.get("pre")) or _is_pre_release(entry.version) or bool(job and job.pre),
        exact=to,
    )


def _is_version(text: str) -> bool:
    from ..fetch import classify

    return classify(text) == "index"


def _is_pre_release(version: str) -> bool:
    """A module on a pre-release follows pre-releases (as `invoke outdated` counts them)."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return False


def _plan_one(project, entry: Pulled, options: PullOptions, work: Path, limit: int, job=None) -> Upgrade:
    from packaging.version import Version

    from ..fsutil import read_confined
    from ..merge import merge_one

    up = Upgrade(entry)
    theirs = _theirs(project, entry, options, work / "theirs", limit, job)
    if theirs is None or theirs.sha256 == entry.record.get("sha256"):
        return up  # the recorded archive is the newest: nothing to do
    if options.resolved:
        _check_resolved(project, entry, theirs)
        up.new, up.resolved = theirs, True
        return up
    changed = job is not None and theirs.source != entry.source  # the manifest asks for another range or file
    if options.to is None and not changed and Version(theirs.package.version) < Version(entry.version):
        return up  # never a downgrade unless asked for (--to, the manifest)
    base = _base(project, entry, work / "base", limit)
    up.new = theirs
    theirs.job.pre = theirs.job.pre or options.pre  # recorded: its range may take pre-releases
    labels = ("project", f"{_label(base)} (base)", _label(theirs))
    for rel in sorted(set(base.files) | set(theirs.files), key=str):
        ours = read_confined(project.root, rel)
        up.current[rel] = ours
        merged = merge_one(ours, base.files.get(rel), theirs.files.get(rel), labels, upstream=_label(theirs))
        if merged.action != "same":
            up.changes.append((rel, merged))
    return up


def _check_resolved(project, entry: Pulled, theirs: Placement) -> None:
    """--resolved: the module's files hold no conflict marker any more (nothing else is judged)."""
    from ..fsutil import read_confined

    left = []
    for rel in sorted(theirs.files, key=str):
        data = read_confined(project.root, rel) or b""
        if any(line.startswith((b"<<<<<<< ", b">>>>>>> ")) for line in data.splitlines()):
            left.append(str(rel))
    if left:
        raise PiperackError(
            f"{entry.module}: conflict markers are still in {', '.join(left)}; resolve them, then run --resolved again"
        )


def _write(project, ups: list[Upgrade], shared: dict) -> None:
    """Every merged file and the shared changes (requirements.in, the record) in one transaction."""
    from ..fsutil import transaction

    with transaction(project.root) as tx:
        for up in ups:
            for rel, merged in up.changes:
                if merged.action == "delete":
                    tx.remove(rel)
                elif merged.data is not None and up.current.get(rel) is None:
                    tx.create(rel, merged.data)
                elif merged.data is not None:
                    tx.change(rel, merged.data)
        for rel, text in shared.items():
            tx.change(rel, text.encode("utf-8"))


def _report(ups: list[Upgrade], dry_run: bool, dirty: list[str]) -> None:
    show = ui.shown
    if dry_run:
        ui.info("dry run: nothing written.")
    for up in ups:
        entry = up.entry
        if up.new is None:
            held = "the newest its range allows" if entry.record.get("index") else "what its source holds"
            ui.info(f"{entry.module}: {entry.package or entry.name} {entry.version} is {held}")
            continue
        if up.resolved:
            ui.info(
                f"{'would record' if dry_run else 'recording'} {entry.module} at {_label(up.new)}: conflicts resolved"
            )
            continue
        verb = "would upgrade" if dry_run else "upgrading"
        ui.info(f"{verb} {entry.module}: {entry.version} -> {_label(up.new)} (from {show(up.new.source)})")
        if not up.changes:
            ui.info("  (no file changes)")
        for rel, merged in up.changes:
            ui.info(f"  {merged.action:<8}  {show(rel)}{listed_note(merged.note, str(rel) in dirty)}")


def _diff(ups: list[Upgrade]) -> None:
    from ..merge import unified_diff

    for up in ups:
        for rel, merged in up.changes:
            if merged.data is not None or merged.action == "delete":
                sys.stdout.writelines(unified_diff(str(rel), up.current.get(rel), merged.data))
    sys.stdout.flush()
