"""Package indexes for ``invoke pull NAME``: the "simple" repository API (PEP 503 HTML, PEP 691
JSON) read with the user's pip configuration (``pip config list``: index-url, extra-index-url,
find-links, cert), instead of ``pip download``: pip prepares an sdist's metadata by running its
build backend (setup.py), and a pull must never run code from the package.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from .download import (
    CHUNK,
    MAX_INDEX_PAGE,
    SDIST_SUFFIX,
    URL_RE,
    archive_name,
    copy_stream,
    get_following,
    http_get,
    http_session,
    strip_credentials,
)
from .errors import PiperackError, first_line
from .yamlload import load_json

DEFAULT_INDEX = "https://pypi.org/simple"

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
    if location.startswith("file://") or not URL_RE.match(location):
        path = Path(unquote(urlsplit(location).path)) if location.startswith("file://") else Path(location)
        if path.is_dir():
            index = path / "index.html"
            if index.is_file():
                return index.read_text(encoding="utf-8", errors="replace"), "text/html"
            rows = "".join(f'<a href="{p.name}">{p.name}</a>\n' for p in sorted(path.iterdir()) if p.is_file())
            return rows, "text/html"
        return None
    shown = strip_credentials(location)
    response, _ = get_following(session, location, secrets, True, accept, set())
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

    shown = strip_credentials(base)
    remote = urlsplit(base).scheme.lower() in {"http", "https"}
    found = []

    def add(filename, url, sha, yanked) -> None:
        if remote and urlsplit(url).scheme.lower() not in {"http", "https"}:
            raise PiperackError(f"{shown}: the index page links to a local file ({strip_credentials(url)}); refused")
        found.append(_Candidate(filename, url, sha, yanked))

    if "json" in ctype:
        try:
            data = load_json(content)
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
            if not URL_RE.match(base):
                base = Path(base).resolve().as_uri() + "/"
            for cand in _parse_page(base, *page):
                cand.origin = location
                found.append(cand)
    return found, indexes + find_links


def pick_version(versions, specifier, pre: bool = False):
    """The highest of ``versions`` (packaging Versions) that ``specifier`` (a SpecifierSet) allows,
    or None. Pre-releases count only with ``pre`` or when the specifier names one (``==0.2rc1``)."""
    allowed = list(specifier.filter(versions, prereleases=True if pre else bool(specifier.prereleases)))
    return max(allowed) if allowed else None


def fetch_from_index(
    spec: str, workdir: Path, index_url: str | None, max_bytes: int, pre: bool = False, exact: str | None = None
) -> tuple[Path, str, str, str, str]:
    """The highest sdist of ``spec`` (a name and an optional PEP 440 range) on the index consulted,
    downloaded into ``workdir``: (path, sha256, spec, version, index). Pre-releases only with ``pre``;
    ``exact``: that version and no other (a recorded one), whatever the range says."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

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
        sdists, wheels = sdist_versions(candidates, name), []
        for cand in candidates:
            if cand.yanked or not cand.filename.endswith(".whl"):
                continue
            try:
                wname, wversion, _, _ = parse_wheel_filename(cand.filename)
            except InvalidWheelFilename:
                continue
            if wname == name and req.specifier.contains(wversion, prereleases=True):
                wheels.append(cand)
        where = ", ".join(strip_credentials(s) for s in searched) or "no index (pip's no-index is set)"
        wanted = SpecifierSet(f"=={exact}") if exact else req.specifier
        version = pick_version(sdists, wanted, pre)
        if version is None and exact:
            raise PiperackError(f"{spec}: the recorded version {exact} is not on the index (searched {where})")
        if version is None:
            if wheels:
                raise PiperackError(
                    f"{spec}: the index has only wheels for it (no .tar.gz sdist); "
                    "a micro-package is pulled from its sdist "
                    f"(searched {where})"
                )
            pre_release = None if pre else pick_version(sdists, req.specifier, pre=True)
            hint = f"; only pre-releases match (newest {pre_release}): pass --pre to take one" if pre_release else ""
            raise PiperackError(f"{spec}: no sdist found matching it (searched {where}){hint}")
        cand = sdists[version]
        dest = workdir / archive_name(cand.filename)
        if cand.url.startswith("file://"):
            with open(unquote(urlsplit(cand.url).path), "rb") as stream:
                digest = copy_stream(stream, dest, cand.filename, max_bytes, None)
        else:
            response = http_get(session, cand.url, [])
            with response:
                digest = copy_stream(response.raw, dest, strip_credentials(cand.url), max_bytes, None)
        if cand.sha256 and cand.sha256.lower() != digest:
            raise PiperackError(
                f"{strip_credentials(cand.url)}: sha256 differs from the index's ({digest} != {cand.sha256})"
            )
    return dest, digest, spec, str(version), strip_credentials(cand.origin)


# -- one project's files on one index (publish's "is it there already?", outdated's versions) ----------


def index_files(index: str, name: str, session) -> list[_Candidate]:
    """The files ``index`` lists for project ``name`` on its simple page (PEP 503 HTML or PEP 691
    JSON), checked as untrusted; [] when the index has no such project (HTTP 404)."""
    from packaging.utils import canonicalize_name

    base = index.rstrip("/") + f"/{canonicalize_name(name)}/"
    page = _read_location(base, session, [], "application/vnd.pypi.simple.v1+json, text/html;q=0.2")
    return [] if page is None else _parse_page(base, *page)


def sdist_versions(files: list[_Candidate], name: str) -> dict:
    """The sdists of project ``name`` among ``files``, yanked ones left out: packaging Version -> file."""
    from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename

    wanted = canonicalize_name(name)
    found = {}
    for cand in files:
        if cand.yanked or not cand.filename.endswith(SDIST_SUFFIX):
            continue
        try:
            sname, sversion = parse_sdist_filename(cand.filename)
        except InvalidSdistFilename:
            continue
        if sname == wanted:
            found.setdefault(sversion, cand)
    return found
