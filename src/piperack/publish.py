"""``invoke publish``: the micro-packages ``invoke package`` made, uploaded to the team's package index.

What is sent: every ``.tar.gz`` listed in a ``SHA256SUMS`` that package wrote (in ``dist/`` and in
each ``[tool.piperack.package]`` entry's destination) whose bytes still match it, so a file edited
or dropped there by hand is never published. Where: ``--repository-url``, else ``[tool.piperack.publish]
repository-url``, else ``$TWINE_REPOSITORY_URL``; never pypi.org by default. How: the legacy upload
API (the one pypiserver, devpi, Nexus, Artifactory and GitLab serve), through twine's ``Repository``
and ``PackageFile``, imported only here.

Before any upload the index's simple page of every package is read (``indexes.index_files``): a
version already there is never replaced. The same file (same sha256) is skipped; a different file
under an existing version refuses the whole publish in one line. Credentials: ``TWINE_USERNAME`` /
``TWINE_PASSWORD``, else the ``~/.pypirc`` section whose ``repository`` is this URL, else keyring
(twine's resolver, never prompting); they are sent, never shown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from . import ui
from .download import http_session, redact, sha256_file, strip_credentials
from .errors import PiperackError, first_line
from .options import PublishOptions, package_folders
from .project import Project
from .sdist import SUMS_FILE, read_sums

PYPIRC = "~/.pypirc"


@dataclass
class Upload:
    path: Path
    name: str  # the project name as the file spells it
    version: str
    sha256: str
    state: str = "new"  # new | published (the same file is on the index already)


def local_sdists(project: Project) -> list[Upload]:
    """The archives package wrote and SHA256SUMS still vouches for, in folder and name order."""
    from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename

    found = []
    for folder in package_folders(project):
        for fname, digest in sorted(read_sums(folder).items()):
            if not fname.endswith(".tar.gz"):
                continue
            path = folder / fname
            try:
                name, version = parse_sdist_filename(fname)
            except InvalidSdistFilename:
                ui.warn(f"{project.label(path)}: not a <name>-<version>.tar.gz file name; not published")
                continue
            actual = sha256_file(path)
            if actual != digest.lower():
                raise PiperackError(
                    f"{project.label(path)} is not the file `invoke package` wrote (its sha256 differs from "
                    f"{project.label(folder / SUMS_FILE)}'s); package it again before publishing"
                )
            shown_name = fname[: -len(".tar.gz")].rpartition("-")[0]  # as the file spells it, not normalised
            found.append(
                Upload(path, shown_name if canonicalize_name(shown_name) == name else name, str(version), actual)
            )
    if not found:
        shown = ", ".join(project.label(f) + "/" for f in package_folders(project))
        raise PiperackError(
            f"nothing to publish: no archive made by `invoke package` in {shown} "
            "(run `invoke package pipelines.<name>` or `invoke package --all` first)"
        )
    return found


def credentials(repository: str, environ) -> tuple[str | None, str | None]:
    """(username, password) for ``repository``: $TWINE_USERNAME/$TWINE_PASSWORD, the ~/.pypirc section
    naming this URL, the URL's own user:password@, then keyring. None where nothing gave one."""
    from twine import auth, exceptions, utils

    _quiet_twine()
    config = {"repository": strip_credentials(repository), "username": None, "password": None}
    parts = urlsplit(repository)
    if parts.username:
        config["username"], config["password"] = parts.username, parts.password
    pypirc = os.path.expanduser(PYPIRC)
    if os.path.isfile(pypirc):
        try:
            sections = utils.get_config(pypirc)
        except (exceptions.InvalidConfiguration, OSError) as exc:
            raise PiperackError(f"{pypirc}: {first_line(exc)}") from None
        for section in sections.values():
            if str(section.get("repository") or "").rstrip("/") == config["repository"].rstrip("/"):
                config["username"] = section.get("username") or config["username"]
                config["password"] = section.get("password") or config["password"]
    resolver = auth.Private(
        config, auth.CredentialInput(environ.get("TWINE_USERNAME") or None, environ.get("TWINE_PASSWORD") or None)
    )
    try:  # NonInteractive: nothing anywhere (an index open to uploads needs nothing)
        username = resolver.username
    except exceptions.NonInteractive:
        return None, None
    try:
        return username, resolver.password
    except exceptions.NonInteractive:
        return username, None


def _quiet_twine() -> None:
    """twine logs keyring misses with tracebacks (and their warnings); piperack says what matters itself."""
    import logging

    logger = logging.getLogger("twine")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False


def _with_userinfo(url: str, username: str | None, password: str | None) -> str:
    """``url`` carrying the credentials (requests sends them to that host only, never on a redirect)."""
    if not username and not password:
        return url
    parts = urlsplit(strip_credentials(url))
    userinfo = quote(username or "", safe="") + ":" + quote(password or "", safe="")
    return urlunsplit((parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, "", ""))


def _check_index(uploads: list[Upload], index: str, secrets: list[str]) -> None:
    """Mark what the index has already (the same file) and refuse a different file under a version it has."""
    from .indexes import index_files

    with http_session() as session:
        for name in dict.fromkeys(u.name for u in uploads):
            try:
                listed = {f.filename: (f.sha256 or "").lower() for f in index_files(index, name, session)}
            except PiperackError as exc:
                raise PiperackError(f"cannot read the package index: {redact(str(exc), secrets)}") from None
            for upload in (u for u in uploads if u.name == name):
                there = listed.get(upload.path.name)
                if there is None:
                    continue
                if there != upload.sha256:
                    raise PiperackError(
                        f"{name} {upload.version} is already on {strip_credentials(index)} (another file: a "
                        "published version is never replaced); raise the pipeline's __version__ and run "
                        "`invoke package` again"
                    )
                upload.state = "published"


def _upload(upload: Upload, repository: str, username, password, secrets: list[str]) -> None:
    import contextlib
    import sys

    import requests
    from twine import exceptions
    from twine.package import PackageFile
    from twine.repository import Repository

    _quiet_twine()
    shown = strip_credentials(repository)
    try:
        package = PackageFile.from_filename(str(upload.path), None)
    except exceptions.InvalidDistribution as exc:
        raise PiperackError(f"{upload.path.name}: {first_line(exc)}") from None
    live = ui.progress_enabled()
    repo = Repository(strip_credentials(repository), username, password, disable_progress_bar=not live)
    # twine prints "Uploading <file>" and its progress bar on stdout: on a terminal they go to stderr
    # with piperack's other progress, else nowhere, so stdout holds only the results.
    target = sys.stderr if live else open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        with contextlib.redirect_stdout(target):
            response = repo.upload(package)
    except requests.RequestException as exc:
        raise PiperackError(f"cannot reach {shown} ({redact(type(exc).__name__, secrets)})") from None
    finally:
        repo.close()
        if target is not sys.stderr:
            target.close()
    status, reason = response.status_code, redact(response.reason or "", secrets)
    if status in (401, 403) and not (username or password):
        raise PiperackError(
            f"{shown} asks for credentials (HTTP {status} {reason}): set TWINE_USERNAME/TWINE_PASSWORD, "
            f"a {PYPIRC} section whose repository is this URL, or keyring"
        )
    if status in (401, 403):
        raise PiperackError(
            f"{shown} refused the credentials (HTTP {status} {reason}): check TWINE_USERNAME/TWINE_PASSWORD, "
            f"the {PYPIRC} section for this URL or keyring"
        )
    if status == 409:
        raise PiperackError(
            f"{upload.name} {upload.version} is already on {shown}; a published version is never replaced"
        )
    if 300 <= status < 400 and response.headers.get("Location"):
        raise PiperackError(
            f"{shown} answered the upload with a redirect (HTTP {status}) to "
            f"{strip_credentials(response.headers['Location'])}: give that URL as the repository URL"
        )
    if status >= 300:
        raise PiperackError(f"{shown} refused {upload.path.name}: HTTP {status} {reason}".rstrip())


def publish(project: Project, options: PublishOptions, environ=None) -> list[Upload]:
    """Run ``invoke publish``: check everything against the index, then upload what is new."""
    environ = os.environ if environ is None else environ
    repository, index = options.resolved(project, environ)
    uploads = local_sdists(project)
    username = password = None
    if not options.dry_run:
        username, password = credentials(repository, environ)
    secrets = [s for s in (password, quote(password or "", safe="")) if s and len(s) >= 3]
    # The index is read with the upload's credentials only when it is on the same host (a private index).
    same_host = urlsplit(index).netloc.rpartition("@")[2] == urlsplit(repository).netloc.rpartition("@")[2]
    _check_index(uploads, _with_userinfo(index, username, password) if same_host else index, secrets)
    todo = [u for u in uploads if u.state == "new"]
    for upload in uploads:
        if upload.state == "published":
            ui.info(f"skipped {project.label(upload.path)}: already on {strip_credentials(index)} (the same file)")
    if not todo:
        names = ", ".join(f"{u.name} {u.version}" for u in uploads)
        raise PiperackError(
            f"nothing new to publish: {names} already on {strip_credentials(index)} (a published version is never "
            "replaced); raise the pipeline's __version__ and run `invoke package` again"
        )
    target = strip_credentials(repository)
    if options.dry_run:
        for upload in todo:
            ui.info(f"would publish {project.label(upload.path)} ({upload.name} {upload.version}) to {target}")
        return todo
    for upload in ui.progress(todo, len(todo), "publishing", lambda u: u.path.name):
        _upload(upload, repository, username, password, secrets)
        ui.info(f"published {project.label(upload.path)} ({upload.name} {upload.version}) to {target}")
    return todo
