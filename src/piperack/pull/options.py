"""pull's options: the jobs of one pull (a source, or every [tool.piperack.pull] entry), checked
before anything is fetched or written."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from ..errors import PiperackError
from ..options import Job, jobs_from_manifest
from ..project import check_identifier, check_module_path


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


def jobs(project, source, all_, alias, destination, env, fs_args, force, sha256) -> list[Job]:
    """The jobs of this pull: one for ``source``, or one per manifest entry for ``all_``."""
    if all_ and source:
        raise PiperackError("give either a source or --all, not both")
    if all_:
        if any(v is not None for v in (alias, destination, env, fs_args, sha256)) or force:
            raise PiperackError(
                "--all takes its options from [tool.piperack.pull]; do not combine it with other options"
            )
        return jobs_from_manifest(project, "pull")
    if not source:
        raise PiperackError("give a source (a .tar.gz path, an fsspec URL or a package name) or --all")
    return [
        Job(
            subject=source,
            alias=alias,
            destination=destination,
            env=env or "base",
            fs_args=fs_args,
            force=bool(force),
            sha256=sha256,
            base=Path.cwd(),
        )
    ]
