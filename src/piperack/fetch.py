"""Sources of an archive, for pull and update's --from: a local path, an fsspec URL (+ fs-args), or
a name on a package index (piperack.indexes).

``fetch(source, workdir, ...)`` brings the archive to a local file (for a local path: the file
itself, read in place) and returns a ``Fetched`` with its sha256 and a display form of the source
with credentials stripped. Nothing downloaded is executed or imported.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .download import (
    URL_RE,
    archive_name,
    copy_stream,
    http_get,
    http_session,
    redact,
    secret_values,
    sha256_file,
    strip_credentials,
)
from .errors import PiperackError, first_line
from .yamlload import AnchorsRefused, NestedTooDeeply, load_yaml_refusing_anchors


@dataclass
class Fetched:
    path: Path  # the archive on local disk
    source: str  # what the user gave, credentials stripped (goes into output and the pull record)
    sha256: str
    kind: str  # "path", "url" or "index"
    version: str | None = None  # known for index pulls
    index: str | None = None  # the index an index pull came from (credentials stripped)


def classify(source: str) -> str:
    """ "url" for ``scheme://…``, "path" for an existing file or something shaped like a file path,
    else "index" (a requirement such as ``ingest`` or ``ingest==0.2``)."""
    if URL_RE.match(source):
        return "url"
    if source.endswith((".tar.gz", ".tgz")) or "/" in source or os.sep in source or Path(source).is_file():
        return "path"
    return "index"


def load_fs_args(path: str | os.PathLike, base: Path) -> dict:
    """The mapping in an fs-args YAML file (relative paths from ``base``)."""
    import yaml

    file = Path(path)
    if not file.is_absolute():
        file = base / file
    try:
        data = load_yaml_refusing_anchors(file.read_text(encoding="utf-8"))
    except AnchorsRefused:
        raise PiperackError(
            f"fs-args file {path}: YAML anchors and aliases are not accepted (they can expand without bound)"
        ) from None
    except NestedTooDeeply as exc:
        raise PiperackError(f"fs-args file {path}: {exc}; refused") from None
    except FileNotFoundError:
        raise PiperackError(f"fs-args file {path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        # The YAML error may quote the file's content (credentials): name the file and line only.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise PiperackError(f"fs-args file {path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PiperackError(f"fs-args file {path}: expected a mapping of filesystem options")
    return data


def _http_headers_from_fs_args(fs_args: dict) -> dict:
    headers = {}
    client = fs_args.get("client_kwargs") or {}
    if isinstance(client, dict) and isinstance(client.get("headers"), dict):
        headers.update(client["headers"])
    if isinstance(fs_args.get("headers"), dict):
        headers.update(fs_args["headers"])
    return headers


def _fetch_http(url: str, workdir: Path, fs_args: dict, max_bytes: int) -> tuple[Path, str]:
    secrets = secret_values(fs_args)
    unknown = sorted(set(fs_args) - {"client_kwargs", "headers"})
    if unknown:
        from .ui import warn

        warn(f"fs-args options {', '.join(unknown)} are not used for http(s) downloads (only headers)")
    headers = _http_headers_from_fs_args(fs_args)
    session = http_session(headers)
    shown = strip_credentials(url)
    dest = workdir / archive_name(urlsplit(url).path)
    with session:
        response = http_get(session, url, secrets, private={str(k) for k in headers})
        with response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > max_bytes:
                raise PiperackError(f"{shown}: {total} bytes, larger than the {max_bytes}-byte limit; refused")
            response.raw.decode_content = False
            import requests

            try:
                digest = copy_stream(response.raw, dest, shown, max_bytes, total)
            except (requests.RequestException, OSError, Exception) as exc:
                if isinstance(exc, PiperackError):
                    raise
                raise PiperackError(f"{shown}: download interrupted ({type(exc).__name__})") from None
    return dest, digest


# -- fsspec -----------------------------------------------------------------------------------------


def _backend_hint(protocol: str) -> str:
    try:
        from fsspec.registry import known_implementations
    except ImportError:
        return "pip install fsspec"
    spec = known_implementations.get(protocol)
    if not spec:
        return ""
    module = spec.get("class", "").split(".")[0]
    if module and module != "fsspec":
        return f"pip install {module}"
    err = spec.get("err") or ""
    match = re.search(r'"([A-Za-z0-9_.-]+)"', err)
    return f"pip install {match.group(1)}" if match else ""


def _filesystem(protocol: str, url: str, fs_args: dict):
    try:
        import fsspec
    except ImportError:
        raise PiperackError(f"{strip_credentials(url)}: fsspec is not installed (pip install fsspec)") from None
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError):
        hint = _backend_hint(protocol)
        if hint:
            raise PiperackError(
                f"{strip_credentials(url)}: no fsspec backend for {protocol}:// is installed ({hint})"
            ) from None
        raise PiperackError(
            f"{strip_credentials(url)}: unknown protocol {protocol}:// (no fsspec backend knows it)"
        ) from None
    try:
        return cls(**fs_args)
    except Exception as exc:  # noqa: BLE001 - any backend error becomes one redacted line
        raise PiperackError(
            f"{strip_credentials(url)}: cannot set up the {protocol}:// filesystem from fs-args "
            f"({redact(type(exc).__name__ + ': ' + first_line(exc), secret_values(fs_args))})"
        ) from None


def _fetch_fsspec(url: str, workdir: Path, fs_args: dict, max_bytes: int) -> tuple[Path, str]:
    protocol = url.split("://", 1)[0].lower()
    shown = strip_credentials(url)
    secrets = secret_values(fs_args)
    fs = _filesystem(protocol, url, fs_args)
    path = fs._strip_protocol(url)
    dest = workdir / archive_name(urlsplit(url).path)
    try:
        try:
            total = fs.size(path)
        except FileNotFoundError:
            raise
        except Exception:  # noqa: BLE001 - size is only for the progress bar and the early limit check
            total = None
        if total is not None and total > max_bytes:
            raise PiperackError(f"{shown}: {total} bytes, larger than the {max_bytes}-byte limit; refused")
        with fs.open(path, "rb") as stream:
            digest = copy_stream(stream, dest, shown, max_bytes, total)
    except PiperackError:
        raise
    except FileNotFoundError:
        raise PiperackError(f"{shown}: not found") from None
    except PermissionError:
        raise PiperackError(f"{shown}: access denied (403)") from None
    except IsADirectoryError:
        raise PiperackError(f"{shown}: is a folder, not a .tar.gz file") from None
    except Exception as exc:  # noqa: BLE001
        raise PiperackError(
            f"{shown}: download failed ({redact(type(exc).__name__ + ': ' + first_line(exc), secrets)})"
        ) from None
    return dest, digest


# -- entry point ------------------------------------------------------------------------------------


def fetch(
    source: str,
    workdir: Path,
    *,
    base: Path | None = None,
    fs_args: dict | None = None,
    index_url: str | None = None,
    max_bytes: int,
    expected_sha256: str | None = None,
    pre: bool = False,
    exact: str | None = None,
) -> Fetched:
    """Bring ``source`` to a local archive. ``base`` resolves relative paths (default: cwd); ``pre``
    lets a version range on an index take pre-releases, ``exact`` asks the index for that version only."""
    kind = classify(source)
    fs_args = fs_args or {}
    if kind != "path":
        workdir.mkdir(parents=True, exist_ok=True)  # downloads land here; a local file is read in place
    version = index = None
    if kind == "path":
        path = Path(source).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        if not path.is_file():
            raise PiperackError(f"{source}: no such file")
        if path.stat().st_size > max_bytes:
            raise PiperackError(f"{source}: larger than the {max_bytes}-byte limit; refused")
        digest, shown = sha256_file(path), source
    elif kind == "url":
        protocol = source.split("://", 1)[0].lower()
        if protocol in {"http", "https"}:
            path, digest = _fetch_http(source, workdir, fs_args, max_bytes)
        else:
            path, digest = _fetch_fsspec(source, workdir, fs_args, max_bytes)
        shown = strip_credentials(source)
    else:
        from .indexes import fetch_from_index

        path, digest, shown, version, index = fetch_from_index(
            source, workdir, index_url, max_bytes, pre=pre, exact=exact
        )
    if expected_sha256:
        want = expected_sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", want):
            raise PiperackError(f"--sha256 {expected_sha256!r}: expected 64 hexadecimal digits")
        if digest != want:
            raise PiperackError(f"{strip_credentials(source)}: sha256 is {digest}, expected {want}; refused")
    return Fetched(path=path, source=shown, sha256=digest, kind=kind, version=version, index=index)
