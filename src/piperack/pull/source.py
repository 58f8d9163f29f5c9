"""Sources for ``invoke pull``: a local path, an fsspec URL (+ fs-args), or a name on a package index.

``fetch(source, workdir, ...)`` brings the archive to a local file (for a local path: the file
itself, read in place) and returns a ``Fetched`` with its sha256 and a display form of the source
with credentials stripped. Nothing downloaded is executed or imported.

Package indexes are read through the "simple" repository API (PEP 503 HTML / PEP 691 JSON) with
the user's pip configuration (``pip config list``: index-url, extra-index-url, find-links, cert),
instead of ``pip download``: pip prepares an sdist's metadata by running its build backend
(setup.py), and a pull must never run code from the package.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from ..errors import PiperackError, first_line

CHUNK = 1024 * 1024
HTTP_TIMEOUT = (10, 60)  # connect, read (seconds)
HTTP_RETRIES = 3
MAX_REDIRECTS = 10
MAX_INDEX_PAGE = 16 * 1024 * 1024  # a simple-API page of one project; PyPI's largest are a few MB
ENV_DEADLINE = "PIPERACK_PULL_TIMEOUT"
DEFAULT_DEADLINE = 600.0  # seconds for one whole download, however slowly the bytes come
DEFAULT_INDEX = "https://pypi.org/simple"
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SDIST_SUFFIX = ".tar.gz"


@dataclass
class Fetched:
    path: Path  # the archive on local disk
    source: str  # what the user gave, credentials stripped (goes into output and the pull record)
    sha256: str
    kind: str  # "path", "url" or "index"
    version: str | None = None  # known for index pulls
    index: str | None = None  # the index an index pull came from (credentials stripped)


def deadline_seconds() -> float:
    """How long one download may take: $PIPERACK_PULL_TIMEOUT (seconds) or 600."""
    raw = os.environ.get(ENV_DEADLINE, "").strip()
    if not raw:
        return DEFAULT_DEADLINE
    try:
        value = float(raw)
    except ValueError:
        raise PiperackError(f"${ENV_DEADLINE}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise PiperackError(f"${ENV_DEADLINE}={raw!r}: expected a positive number of seconds")
    return value


# -- helpers ----------------------------------------------------------------------------------------


def strip_credentials(url: str) -> str:
    """``url`` without user:password@ and without a query string (tokens, signatures) or fragment."""
    if not _URL_RE.match(url):
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def secret_values(fs_args) -> list[str]:
    """Every string value in an fs-args mapping (to be redacted from any message)."""
    found: list[str] = []
    if isinstance(fs_args, dict):
        for value in fs_args.values():
            found += secret_values(value)
    elif isinstance(fs_args, (list, tuple)):
        for value in fs_args:
            found += secret_values(value)
    elif isinstance(fs_args, str) and len(fs_args) >= 3:
        found.append(fs_args)
    return found


def redact(message: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


def classify(source: str) -> str:
    """ "url" for ``scheme://…``, "path" for an existing file or something shaped like a file path,
    else "index" (a requirement such as ``ingest`` or ``ingest==0.2``)."""
    if _URL_RE.match(source):
        return "url"
    if source.endswith((".tar.gz", ".tgz")) or "/" in source or os.sep in source or Path(source).is_file():
        return "path"
    return "index"


class AnchorsRefused(ValueError):
    """YAML anchors or aliases where they are not accepted (they can expand without bound)."""


@functools.cache
def _anchor_refusing_loader():
    """yaml's pure-Python SafeLoader refusing anchors, aliases and deep nesting as it meets them, for a
    PyYAML without libyaml: every node of a document (scalar, sequence, mapping or alias) is composed
    through ``compose_node``, so one pass checks them all before any alias could be expanded."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise AnchorsRefused("YAML anchors and aliases are not accepted")
            if not isinstance(event, yaml.CollectionStartEvent):
                return super().compose_node(parent, index)
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise NestedTooDeeply(f"nested more than {MAX_YAML_DEPTH} levels deep")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return Loader


class NestedTooDeeply(ValueError):
    """YAML nested deeper than ``MAX_YAML_DEPTH`` (libyaml's composer recurses without a bound)."""


MAX_YAML_DEPTH = 100


def load_yaml_refusing_anchors(text: str):
    """One YAML document, as ``yaml.safe_load`` reads it, with anchors and aliases refused
    (``AnchorsRefused``) and nesting deeper than ``MAX_YAML_DEPTH`` refused (``NestedTooDeeply``):
    for YAML that piperack did not write (pulled config, fs-args).

    With libyaml (PyYAML's C extension), a first pass over the parser's events checks both, then
    the C loader builds the value: ten times faster than the pure-Python loader's one pass, which
    is what pulling 50 packages spent most of its planning on. The event pass is iterative, so a
    document nested 100,000 deep is refused there instead of crashing libyaml's recursive composer.
    """
    import yaml

    fast = getattr(yaml, "CSafeLoader", None)
    if fast is None:
        loader = _anchor_refusing_loader()(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    depth = 0
    for event in yaml.parse(text, Loader=fast):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise AnchorsRefused("YAML anchors and aliases are not accepted")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise NestedTooDeeply(f"nested more than {MAX_YAML_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.load(text, Loader=fast)  # noqa: S506 - CSafeLoader is the safe loader, in C


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


def _copy_stream(stream, dest: Path, label: str, max_bytes: int, total: int | None) -> str:
    """Copy a binary stream to ``dest`` (new file), hashing and enforcing the size limit."""
    import time

    from ..ui import ByteProgress

    digest = hashlib.sha256()
    size = 0
    limit_seconds = deadline_seconds()
    ends = time.monotonic() + limit_seconds
    bar = ByteProgress(f"downloading {label}", total)
    # read1: whatever has arrived (up to CHUNK), so a server that drips bytes meets the deadline
    # between reads instead of holding a read that waits for a whole CHUNK.
    read = getattr(stream, "read1", None) or stream.read
    try:
        with open(dest, "xb") as out:
            while True:
                chunk = read(CHUNK)
                if not chunk:
                    break
                if time.monotonic() > ends:
                    raise PiperackError(
                        f"{label}: the download took longer than {limit_seconds:g} s (the limit; "
                        f"${ENV_DEADLINE} changes it); refused"
                    )
                size += len(chunk)
                if size > max_bytes:
                    raise PiperackError(f"{label}: larger than {max_bytes} bytes (the limit); refused")
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
    finally:
        bar.close()
    if total is not None and size != total:
        raise PiperackError(f"{label}: the download stopped at {size} of {total} bytes; refused")
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _archive_name(url_path: str) -> str:
    name = Path(unquote(url_path)).name or "download"
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    return name if name not in (".", "..") else "download"


# -- HTTP -------------------------------------------------------------------------------------------


def http_session(headers: dict | None = None, verify=None):
    """A requests session with timeouts applied by the caller and retries with backoff."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(
        total=HTTP_RETRIES,
        connect=HTTP_RETRIES,
        read=HTTP_RETRIES,
        backoff_factor=0.3,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Like pip: ask for the file as stored, so the sha256 is the archive's, not a re-encoding's.
    session.headers["Accept-Encoding"] = "identity"
    if headers:
        session.headers.update({str(k): str(v) for k, v in headers.items()})
    if verify is not None:
        session.verify = verify
    return session


def _origin(url: str) -> tuple:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _get_following(session, url: str, secrets: list[str], stream: bool, accept: str | None, private: set[str]):
    """GET with redirects followed by hand: the caller's own headers (fs-args: tokens, API keys)
    go only to the host the user named, never to another one a redirect points at."""
    import requests

    headers = {"Accept": accept} if accept else {}
    first = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        if _origin(url) != first:
            headers.update({name: None for name in private})  # None removes a session header
        try:
            response = session.get(url, timeout=HTTP_TIMEOUT, stream=stream, headers=headers, allow_redirects=False)
        except requests.RequestException as exc:
            raise PiperackError(
                f"{strip_credentials(url)}: request failed ({redact(type(exc).__name__, secrets)}) after "
                f"{HTTP_RETRIES} retries"
            ) from None
        if response.is_redirect and response.headers.get("Location"):
            target = urljoin(url, response.headers["Location"])
            response.close()
            if urlsplit(target).scheme.lower() not in {"http", "https"}:
                raise PiperackError(
                    f"{strip_credentials(url)}: redirected to a {urlsplit(target).scheme}: URL; refused"
                )
            url = target
            continue
        return response, url
    raise PiperackError(f"{strip_credentials(url)}: more than {MAX_REDIRECTS} redirects; refused")


def _http_get(
    session,
    url: str,
    secrets: list[str],
    stream: bool = True,
    accept: str | None = None,
    private: set[str] = frozenset(),
):
    shown = strip_credentials(url)
    response, _ = _get_following(session, url, secrets, stream, accept, set(private))
    if response.status_code >= 400:
        reason = redact(response.reason or "", secrets)
        response.close()
        raise PiperackError(f"{shown}: HTTP {response.status_code} {reason}".rstrip())
    return response


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
        from ..ui import warn

        warn(f"fs-args options {', '.join(unknown)} are not used for http(s) downloads (only headers)")
    headers = _http_headers_from_fs_args(fs_args)
    session = http_session(headers)
    shown = strip_credentials(url)
    dest = workdir / _archive_name(urlsplit(url).path)
    with session:
        response = _http_get(session, url, secrets, private={str(k) for k in headers})
        with response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > max_bytes:
                raise PiperackError(f"{shown}: {total} bytes, larger than the {max_bytes}-byte limit; refused")
            response.raw.decode_content = False
            import requests

            try:
                digest = _copy_stream(response.raw, dest, shown, max_bytes, total)
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
    dest = workdir / _archive_name(urlsplit(url).path)
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
            digest = _copy_stream(stream, dest, shown, max_bytes, total)
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


# -- package indexes --------------------------------------------------------------------------------


_PIP_SETTINGS: dict = {}


def pip_settings(python: str | None = None) -> dict[str, str]:
    """index-url, extra-index-url, find-links, cert from the user's pip configuration (env wins).

    Read once per process (``pip config list`` is a subprocess)."""
    key = python or sys.executable
    if key not in _PIP_SETTINGS:
        _PIP_SETTINGS[key] = _read_pip_settings(key)
    return dict(_PIP_SETTINGS[key])


def _read_pip_settings(python: str) -> dict[str, str]:
    try:
        out = subprocess.run(
            [python, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    rank = {":env:": 3, "download": 2, "global": 1}
    best: dict[str, tuple[int, str]] = {}
    for line in out.splitlines():
        match = re.match(r"^([^.=]+)\.([a-z-]+)='(.*)'$", line.strip())
        if not match:
            continue
        section, key, value = match.groups()
        if key not in {"index-url", "extra-index-url", "find-links", "cert", "no-index"}:
            continue
        score = rank.get(section)
        if score is None:
            continue
        if key not in best or score > best[key][0]:
            best[key] = (score, value)
    return {key: value for key, (_, value) in best.items()}


class _Links:
    """Anchors of a PEP 503 page: (href, text, attributes)."""

    def __init__(self):
        from html.parser import HTMLParser

        links = self.links = []

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                if tag == "a":
                    attributes = dict(attrs)
                    if attributes.get("href"):
                        links.append(attributes)

        self.parser = Parser()

    def feed(self, text: str):
        self.parser.feed(text)
        return self.links


@dataclass
class _Candidate:
    filename: str
    url: str
    sha256: str | None
    yanked: bool
    origin: str = ""  # the index or find-links location that listed it


def _read_location(location: str, session, secrets, accept: str | None = None) -> tuple[str, str] | None:
    """(content, content-type) of an index page or local folder listing; None when absent."""
    if location.startswith("file://") or not _URL_RE.match(location):
        path = Path(unquote(urlsplit(location).path)) if location.startswith("file://") else Path(location)
        if path.is_dir():
            index = path / "index.html"
            if index.is_file():
                return index.read_text(encoding="utf-8", errors="replace"), "text/html"
            rows = "".join(f'<a href="{p.name}">{p.name}</a>\n' for p in sorted(path.iterdir()) if p.is_file())
            return rows, "text/html"
        return None
    shown = strip_credentials(location)
    response, _ = _get_following(session, location, secrets, True, accept, set())
    with response:
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise PiperackError(f"{shown}: HTTP {response.status_code} {response.reason or ''}".rstrip())
        body = bytearray()
        try:
            for chunk in response.iter_content(CHUNK):
                body += chunk
                if len(body) > MAX_INDEX_PAGE:
                    raise PiperackError(f"{shown}: the index page is larger than {MAX_INDEX_PAGE} bytes; refused")
        except PiperackError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken connection mid-page
            raise PiperackError(f"{shown}: reading the index page failed ({type(exc).__name__})") from None
        encoding = response.encoding or "utf-8"
        return bytes(body).decode(
            encoding if encoding.lower() != "iso-8859-1" else "utf-8", errors="replace"
        ), response.headers.get("Content-Type", "")


def _parse_page(base: str, content: str, ctype: str) -> list[_Candidate]:
    """The files a simple-API page (PEP 503 HTML or PEP 691 JSON) lists, checked as untrusted."""
    import json

    shown = strip_credentials(base)
    remote = urlsplit(base).scheme.lower() in {"http", "https"}
    found = []

    def add(filename, url, sha, yanked) -> None:
        if remote and urlsplit(url).scheme.lower() not in {"http", "https"}:
            raise PiperackError(f"{shown}: the index page links to a local file ({strip_credentials(url)}); refused")
        found.append(_Candidate(filename, url, sha, yanked))

    if "json" in ctype:
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise PiperackError(f"{shown}: the index's JSON page is not valid JSON ({first_line(exc)})") from None
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, list):
            raise PiperackError(f"{shown}: the index's JSON page has no list of files; refused")
        for item in files:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("filename"), str)
                or not isinstance(item.get("url"), str)
            ):
                raise PiperackError(f"{shown}: the index's JSON page lists a file without a filename and url; refused")
            hashes = item.get("hashes") if isinstance(item.get("hashes"), dict) else {}
            sha = hashes.get("sha256") if isinstance(hashes.get("sha256"), str) else None
            add(item["filename"], urljoin(base, item["url"]), sha, bool(item.get("yanked")))
        return found
    for attrs in _Links().feed(content):
        href = attrs["href"]
        url = urljoin(base, href)
        fragment = urlsplit(url).fragment
        sha = fragment.split("=", 1)[1] if fragment.startswith("sha256=") else None
        filename = unquote(Path(urlsplit(url).path).name)
        add(filename, url.split("#", 1)[0], sha, "data-yanked" in attrs)
    return found


def _index_candidates(
    name: str, indexes: list[str], find_links: list[str], session, secrets
) -> tuple[list[_Candidate], list[str]]:
    accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.2"
    found: list[_Candidate] = []
    for index in indexes:
        base = index.rstrip("/") + f"/{name}/"
        page = _read_location(base, session, secrets, accept)
        if page is not None:
            for cand in _parse_page(base, *page):
                cand.origin = index
                found.append(cand)
    for location in find_links:
        page = _read_location(location, session, secrets)
        if page is not None:
            base = location if location.endswith("/") else location + "/"
            if not _URL_RE.match(base):
                base = Path(base).resolve().as_uri() + "/"
            for cand in _parse_page(base, *page):
                cand.origin = location
                found.append(cand)
    return found, indexes + find_links


def _fetch_index(spec: str, workdir: Path, index_url: str | None, max_bytes: int) -> tuple[Path, str, str, str, str]:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        canonicalize_name,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        req = Requirement(spec)
    except InvalidRequirement:
        raise PiperackError(
            f"{spec!r} is not a file, a URL or a package name with an optional version (such as 'ingest==0.2')"
        ) from None
    if req.url or req.extras or req.marker:
        raise PiperackError(f"{spec!r}: give a package name and an optional version specifier only")
    name = canonicalize_name(req.name)
    settings = pip_settings()
    if index_url:  # the only index consulted: no extra index, no find-links (dependency confusion)
        indexes, find_links = [index_url], []
    elif settings.get("no-index", "").lower() in {"1", "true", "yes", "on"}:
        indexes, find_links = [], settings.get("find-links", "").split()
    else:
        indexes = [settings.get("index-url") or DEFAULT_INDEX] + settings.get("extra-index-url", "").split()
        find_links = settings.get("find-links", "").split()
    cert = settings.get("cert")
    session = http_session(verify=cert if cert and Path(cert).exists() else None)
    with session:
        candidates, searched = _index_candidates(name, indexes, find_links, session, [])
        sdists, wheels = {}, []
        for cand in candidates:
            if cand.yanked:
                continue
            if cand.filename.endswith(".whl"):
                try:
                    wname, wversion, _, _ = parse_wheel_filename(cand.filename)
                except InvalidWheelFilename:
                    continue
                if wname == name and req.specifier.contains(wversion, prereleases=True):
                    wheels.append(cand)
                continue
            if not cand.filename.endswith(_SDIST_SUFFIX):
                continue
            try:
                sname, sversion = parse_sdist_filename(cand.filename)
            except InvalidSdistFilename:
                continue
            if sname == name:
                sdists.setdefault(sversion, cand)
        where = ", ".join(strip_credentials(s) for s in searched) or "no index (pip's no-index is set)"
        chosen = list(req.specifier.filter(sorted(sdists)))
        if not chosen:
            if wheels:
                raise PiperackError(
                    f"{spec}: the index has only wheels for it (no .tar.gz sdist); "
                    "a micro-package is pulled from its sdist "
                    f"(searched {where})"
                )
            raise PiperackError(f"{spec}: no sdist found matching it (searched {where})")
        version = chosen[-1]
        cand = sdists[version]
        dest = workdir / _archive_name(cand.filename)
        if cand.url.startswith("file://"):
            with open(unquote(urlsplit(cand.url).path), "rb") as stream:
                digest = _copy_stream(stream, dest, cand.filename, max_bytes, None)
        else:
            response = _http_get(session, cand.url, [])
            with response:
                digest = _copy_stream(response.raw, dest, strip_credentials(cand.url), max_bytes, None)
        if cand.sha256 and cand.sha256.lower() != digest:
            raise PiperackError(
                f"{strip_credentials(cand.url)}: sha256 differs from the index's ({digest} != {cand.sha256})"
            )
    return dest, digest, spec, str(version), strip_credentials(cand.origin)


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
) -> Fetched:
    """Bring ``source`` to a local archive. ``base`` resolves relative paths (default: cwd)."""
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
        path, digest, shown, version, index = _fetch_index(source, workdir, index_url, max_bytes)
    if expected_sha256:
        want = expected_sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", want):
            raise PiperackError(f"--sha256 {expected_sha256!r}: expected 64 hexadecimal digits")
        if digest != want:
            raise PiperackError(f"{strip_credentials(source)}: sha256 is {digest}, expected {want}; refused")
    return Fetched(path=path, source=shown, sha256=digest, kind=kind, version=version, index=index)
