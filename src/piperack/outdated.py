"""``invoke outdated``: which pulled pipelines have newer versions on the index they came from.

The record is ``[tool.piperack.pulled]`` (written by pull): per module its source, version and the
index that served it. A pipeline pulled by name is checked against that index: the newest version
its range allows (the record's ``specifier`` when present, else the range of the source it was
pulled by, ``shared~=0.1``; a bare name allows every version) and the newest overall. Pipelines
pulled from a file or URL have no index to ask and say so.

One request per package (its simple page, ``indexes.index_files``), all at once on a few threads,
within one deadline for the whole check (``$PIPERACK_OUTDATED_TIMEOUT``, 30 s): a package whose
index has not answered by then is reported as such, and the command does not wait for it.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from . import ui
from .download import deadline_seconds, http_session, strip_credentials
from .errors import PiperackError, first_line
from .project import Project

DEADLINE_ENV = "PIPERACK_OUTDATED_TIMEOUT"
DEFAULT_DEADLINE = 30.0
MAX_THREADS = 16


@dataclass
class Row:
    module: str
    package: str = "-"
    recorded: str = "-"
    allowed: str = "-"
    newest: str = "-"
    status: str = ""
    behind: bool = False
    unknown: bool = False  # asked, but no answer (an index error or the deadline)
    # what to ask, for pipelines pulled by name: (index, name, specifier, pre-releases allowed)
    query: tuple | None = None


def _rows(project: Project) -> list[Row]:
    """One row per recorded pull; those pulled by name carry the question for their index."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    where = f"{project.pyproject.name} [tool.piperack.pulled]"
    pulled = project.tool("pulled", default={})
    if not isinstance(pulled, dict):
        raise PiperackError(f"{where} must be a table of pulled modules")
    rows = []
    for module, record in pulled.items():
        if not isinstance(record, dict):
            raise PiperackError(f'{where} "{module}": expected a table such as {{source, version, sha256, index}}')
        row = Row(module, recorded=str(record.get("version") or "-"))
        source, index = str(record.get("source") or ""), record.get("index")
        rows.append(row)
        if not index:
            row.status = f"cannot be checked: pulled from a file or URL ({strip_credentials(source) or 'unknown'})"
            continue
        try:
            req = Requirement(source)
            spec = SpecifierSet(str(record["specifier"])) if record.get("specifier") else req.specifier
            recorded = Version(row.recorded)
        except (InvalidRequirement, InvalidSpecifier, InvalidVersion) as exc:
            row.status = f"cannot be checked: {first_line(exc)}"
            continue
        row.package = req.name
        row.query = (str(index), canonicalize_name(req.name), spec, bool(record.get("pre")) or recorded.is_prerelease)
    return rows


def _with_pip_credentials(index: str) -> str:
    """The recorded index (kept without credentials) as pip's configuration spells it, credentials
    included, when pip is configured for it; else as recorded (requests then reads ~/.netrc)."""
    from .indexes import pip_settings

    settings = pip_settings()
    for url in [settings.get("index-url", ""), *settings.get("extra-index-url", "").split()]:
        if url and strip_credentials(url).rstrip("/") == index.rstrip("/"):
            return url
    return index


def _ask(todo: queue.Queue, answers: queue.Queue) -> None:
    """A worker: the sdist versions of each (index, name) taken from ``todo``, or the error."""
    from .indexes import index_files, sdist_versions

    with http_session() as session:
        while True:
            try:
                url, index, name = todo.get_nowait()
            except queue.Empty:
                return
            try:
                answer = list(sdist_versions(index_files(url, name, session), name))
            except PiperackError as exc:
                answer = exc
            except Exception as exc:  # noqa: BLE001 - one package's broken answer is that row's problem
                answer = PiperackError(f"{strip_credentials(index)}: {first_line(exc)}")
            answers.put(((index, name), answer))


def ask_indexes(questions: list[tuple[str, str]], seconds: float) -> dict:
    """(index, name) -> sorted versions (or the PiperackError), for those answered within ``seconds``.

    Daemon threads: one whose index never answers is left behind when the command ends."""
    from . import indexes  # noqa: F401 - imported here, not first in several threads at once

    todo, answers = queue.Queue(), queue.Queue()
    for index, name in dict.fromkeys(questions):
        todo.put((_with_pip_credentials(index), index, name))
    for _ in range(min(MAX_THREADS, todo.qsize())):
        threading.Thread(target=_ask, args=(todo, answers), daemon=True).start()
    found: dict = {}
    ends = time.monotonic() + seconds
    while len(found) < len(set(questions)):
        try:
            key, answer = answers.get(timeout=max(0.0, ends - time.monotonic()))
        except queue.Empty:
            break
        found[key] = answer if isinstance(answer, PiperackError) else sorted(answer)
    return found


def _judge(row: Row, answer, seconds: float) -> None:
    from packaging.version import Version

    index, _, spec, pre = row.query
    if answer is None:
        row.status, row.unknown = f"no answer from {strip_credentials(index)} within {seconds:g} s", True
        return
    if isinstance(answer, PiperackError):
        row.status, row.unknown = f"cannot be checked: {answer}", True
        return
    if not answer:
        row.status, row.unknown = f"cannot be checked: {strip_credentials(index)} has no sdist of it", True
        return
    from .indexes import pick_version  # the choice `pull` and `pull --upgrade` make

    releases = [v for v in answer if pre or not v.is_prerelease] or answer
    allowed = pick_version(answer, spec, pre)
    row.newest = str(releases[-1])
    row.allowed = str(allowed) if allowed else "-"
    recorded = Version(row.recorded)
    if allowed and allowed > recorded:
        row.behind = True
        row.status = f"behind: invoke pull --upgrade {row.module.rpartition('.')[2]}"
    elif releases[-1] > recorded:
        row.status = "up to date within its range (newer outside it)"
    else:
        row.status = "up to date"


def _table(rows: list[Row]) -> list[str]:
    header = ("module", "package", "recorded", "allowed", "newest", "")
    cells = [header]
    for r in rows:
        cells.append(tuple(ui.shown(c) for c in (r.module, r.package, r.recorded, r.allowed, r.newest, r.status)))
    widths = [max(len(line[i]) for line in cells) for i in range(5)]
    return ["  ".join(c.ljust(w) for c, w in zip(line[:5], widths, strict=True)) + "  " + line[5] for line in cells]


def outdated(project: Project, check: bool = False) -> list[Row]:
    """Run ``invoke outdated``; with ``check``, raise when a pipeline is behind or could not be checked."""
    rows = _rows(project)
    if not rows:
        ui.info("no pulled pipelines ([tool.piperack.pulled] in pyproject.toml is empty)")
        return rows
    seconds = deadline_seconds(DEADLINE_ENV, DEFAULT_DEADLINE)
    asked = [r for r in rows if r.query]
    answers = ask_indexes([r.query[:2] for r in asked], seconds) if asked else {}
    for row in asked:
        _judge(row, answers.get(row.query[:2]), seconds)
    for line in _table(rows):
        ui.info(line.rstrip())
    if check:
        behind = [f"{r.module} ({r.recorded} -> {r.allowed})" for r in rows if r.behind]
        unknown = [r.module for r in rows if r.unknown]
        problems = []
        if behind:
            problems.append(f"{len(behind)} pulled pipeline(s) behind their index: {', '.join(behind)}")
        if unknown:
            problems.append(f"{len(unknown)} could not be checked: {', '.join(unknown)}")
        if problems:
            raise PiperackError("; ".join(problems))
    return rows
