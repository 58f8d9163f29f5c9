"""Bringing bytes to disk safely, for every verb that downloads (pull, update's --from, indexes).

``copy_stream`` writes a stream to a new file with a size limit, a deadline for the whole transfer
and its sha256; ``http_session``/``http_get`` are requests with retries, timeouts and redirects that
drop private headers when they leave the origin; ``strip_credentials``, ``secret_values`` and
``redact`` keep credentials out of every message.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from .errors import PiperackError

CHUNK = 1024 * 1024
HTTP_TIMEOUT = (10, 60)  # connect, read (seconds)
HTTP_RETRIES = 3
MAX_REDIRECTS = 10
MAX_INDEX_PAGE = 16 * 1024 * 1024  # a simple-API page of one project; PyPI's largest are a few MB
ENV_DEADLINE = "PIPERACK_PULL_TIMEOUT"
DEFAULT_DEADLINE = 600.0  # seconds for one whole download, however slowly the bytes come
URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
SDIST_SUFFIX = ".tar.gz"


def deadline_seconds(env: str = ENV_DEADLINE, default: float = DEFAULT_DEADLINE) -> float:
    """How long one download (or another bounded wait) may take: ``$env`` (seconds), else ``default``."""
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise PiperackError(f"${env}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise PiperackError(f"${env}={raw!r}: expected a positive number of seconds")
    return value


def strip_credentials(url: str) -> str:
    """``url`` without user:password@ and without a query string (tokens, signatures) or fragment."""
    if not URL_RE.match(url):
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


def copy_stream(stream, dest: Path, label: str, max_bytes: int, total: int | None) -> str:
    """Copy a binary stream to ``dest`` (new file), hashing and enforcing the size limit."""
    import time

    from .ui import ByteProgress

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


def archive_name(url_path: str) -> str:
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


def get_following(session, url: str, secrets: list[str], stream: bool, accept: str | None, private: set[str]):
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


def http_get(
    session,
    url: str,
    secrets: list[str],
    stream: bool = True,
    accept: str | None = None,
    private: set[str] = frozenset(),
):
    shown = strip_credentials(url)
    response, _ = get_following(session, url, secrets, stream, accept, set(private))
    if response.status_code >= 400:
        reason = redact(response.reason or "", secrets)
        response.close()
        raise PiperackError(f"{shown}: HTTP {response.status_code} {reason}".rstrip())
    return response
