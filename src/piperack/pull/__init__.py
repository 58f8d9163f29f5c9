"""``invoke pull``: bring a micro-package (piperack or Kedro 0.18 sdist) into this project.

A pull runs in two phases, one module each:

1. **Plan** (nothing in the project is touched): ``options`` checks every option, ``source``
   fetches each archive into a temporary folder, ``archive.read_archive`` checks it and reads it
   into memory, ``read`` reads its metadata statically (never by running it), and ``plan`` maps
   its files to the three destinations (code, parameters, tests), rewriting its absolute imports
   (``rewrite.rewrite_references``), detects every conflict and computes the new requirements.in
   (``requirements.merge_requirements``) and pull record (``record.with_pulled``).
2. **Apply** (only when the plan has no error): ``apply`` writes it as one ``fsutil.transaction``;
   an error or interruption midway restores the project byte-for-byte.

``--all`` plans every manifest entry first and applies them as one transaction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import PiperackError
from ..options import PullOptions
from .plan import Placement, PullPlan


def pull(options: PullOptions, project=None, max_bytes: int | None = None) -> PullPlan:
    """Pull one source (or every manifest entry with ``options.all_``) into the project; returns the plan.

    One pull at a time per project (others wait); a pull that a SIGKILL cut short is undone first.
    """
    from ..fsutil import write_session
    from ..project import find_project

    options.check_upgrade()
    project = project or find_project()
    with write_session(project.root, "pull"):
        project = find_project(project.root)  # what the project holds now (another pull may have landed)
        if options.upgrade and not options.all_:
            from .upgrade import upgrade

            return upgrade(project, options, [options.source], max_bytes)
        return _pull(project, options, max_bytes)


def _pull(project, options: PullOptions, max_bytes) -> PullPlan:
    from .. import ui
    from ..archive import max_bytes_from_env
    from ..download import secret_values, strip_credentials
    from ..fetch import fetch, load_fs_args
    from .apply import apply, report
    from .lock import check_archive
    from .plan import finish_plan

    limit = max_bytes if max_bytes is not None else max_bytes_from_env()
    todo = options.jobs(project)
    if options.all_:
        todo = _locked(project, todo, options, max_bytes)
        if todo is None or not todo:
            return PullPlan()
    placements: list[Placement] = []
    with tempfile.TemporaryDirectory(prefix="piperack-pull-") as tmp:
        work = Path(tmp)
        items = ui.progress(todo, len(todo), "pulling") if len(todo) > 1 else todo
        fetched_items: list = []  # (job, fetched archive, label, secrets), in manifest order
        stopped: BaseException | None = None  # the first fetch that failed: later jobs are not tried
        for index, job in enumerate(items):
            label = strip_credentials(job.subject)
            try:
                args = load_fs_args(job.fs_args, job.base or Path.cwd()) if job.fs_args else {}
            except PiperackError as exc:
                stopped = exc
                break
            secrets = secret_values(args)
            try:
                fetched = fetch(
                    job.subject,
                    work / f"{index}",
                    base=job.base,
                    fs_args=args,
                    index_url=job.index_url,
                    max_bytes=limit,
                    expected_sha256=job.sha256,
                    pre=job.pre,
                    exact=job.locked,
                )
                if job.locked:
                    check_archive(
                        fetched.sha256, job.locked_sha256, f"version {job.locked}", "" if job.label else label
                    )
            except PiperackError as exc:
                stopped = _labelled(exc, job, secrets)
                break
            fetched_items.append((job, fetched, label, secrets))
        # Errors come out as a one-by-one pull would meet them: the first job's first.
        for (job, _, _, secrets), result in zip(fetched_items, _place_all(project, fetched_items, limit), strict=False):
            if isinstance(result, PiperackError):
                raise _labelled(result, job, secrets) from None
            placements.append(result)
        if stopped is not None:
            raise stopped from None
        plan = finish_plan(
            project,
            placements,
            allow_conflicts=options.allow_conflicts,
            allow_direct=options.allow_direct_references,
        )
        if options.dry_run:
            report(project, plan, dry_run=True)
            return plan
        apply(project, plan)
    report(project, plan, dry_run=False)
    return plan


def _locked(project, todo: list, options: PullOptions, max_bytes) -> list | None:
    """``--all`` with the record as its lock: entries pulled and present are kept (or, with
    ``--upgrade``, merged up to the newest their range allows: None is returned, it is done);
    entries recorded but absent are pulled at their recorded version; new ones at their newest."""
    from .. import ui
    from .lock import allows, lock_jobs

    todo, present = lock_jobs(project, todo, options.upgrade)
    if options.upgrade:
        if todo:
            raise PiperackError(
                f"{todo[0].label}: not pulled yet; run `invoke pull --all` first, then `invoke pull --all --upgrade`"
            )
        from .upgrade import upgrade

        upgrade(project, options, [entry.module for entry, _ in present], max_bytes, {e.module: j for e, j in present})
        return None
    for entry, job in present:
        outside = (
            "" if allows(job, entry) else f" (not what {job.label} asks for: `invoke pull --all --upgrade` moves it)"
        )
        ui.info(f"kept {entry.module}: {entry.package or entry.name} {entry.version}, as recorded{outside}")
    if not todo:
        ui.info("nothing to pull: every entry of [tool.piperack.pull] is pulled as recorded")
    return todo


def _labelled(exc: PiperackError, job, secrets) -> PiperackError:
    """``exc`` as the user sees it: secrets of the job's fs-args redacted, the manifest entry named."""
    from ..download import redact

    message = redact(str(exc), secrets)
    return PiperackError(f"{job.label}: {message}" if job.label else message)


def _place_one(project, item, limit):
    """The placement of one fetched archive, or the PiperackError that refuses it."""
    from ..archive import read_archive
    from .plan import place
    from .read import Staged, read_package

    job, fetched, label, _ = item
    try:
        top, files = read_archive(fetched.path, label=label, max_bytes=limit)
        package = read_package(Staged(top, files), label)
        placement = place(project, job, package, fetched.source, fetched.sha256)
    except PiperackError as exc:
        return exc
    placement.index = fetched.index
    if fetched.kind == "index":
        from .lock import specifier_of

        placement.specifier = specifier_of(fetched.source)
    return placement


def _place_all(project, items: list, limit) -> list:
    """``_place_one`` of every item, in order, up to the first refusal. Planning is CPU work (mostly
    CPython's parser): with many packages, a forked process plans from the end while this one
    plans from the start (``workers``)."""
    from ..workers import map_in_two

    return map_in_two(
        lambda item: _place_one(project, item, limit), items, stop=lambda result: isinstance(result, PiperackError)
    )
