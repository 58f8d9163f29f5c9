"""Debian's headless Chromium, for the tests that render a page piperack wrote (invoke viz).

``chromium()`` finds it ($PIPERACK_TEST_CHROMIUM, which .ci/chromium.sh sets, else `chromium` on
PATH); without one the test skips with the reason, except under CI=true, where it fails: CI must
render the page. ``dump_dom`` returns the DOM after the page's scripts ran; ``screenshot`` writes a
PNG. Each run has its own profile folder, no network (every host resolves to nothing) and the page
opened from file://, as a user double-clicking the file would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TIMEOUT = 120


def chromium() -> str:
    browser = os.environ.get("PIPERACK_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        reason = "no headless Chromium (apt-get install chromium; .ci/chromium.sh start does)"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the browser tests must run, not skip)")
        pytest.skip(reason)
    return browser


def _chromium(page: Path, *flags: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="piperack-chromium-") as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",  # root in a container has no user namespace for the sandbox
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND",  # no network, whatever the page asked for
                *flags,
                Path(page).resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
            env={**os.environ, "HOME": profile},
        )


def dump_dom(page: Path) -> str:
    return _chromium(page, "--dump-dom").stdout


def screenshot(page: Path, png: Path, size: str = "1200,800") -> Path:
    _chromium(page, f"--screenshot={png}", f"--window-size={size}", "--hide-scrollbars")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "chromium wrote no PNG"
    return png


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Elements(HTMLParser):
    """The elements of a DOM dump, in document order: (tag, attributes, text directly inside,
    index of the parent element or -1)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.found: list[list] = []
        self._open: list[int] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.found.append([tag, dict(attrs), "", self._open[-1] if self._open else -1])
        if tag not in VOID:
            self._open.append(len(self.found) - 1)

    def handle_endtag(self, tag):
        while self._open:
            if self.found[self._open.pop()][0] == tag:
                break

    def handle_data(self, data):
        if self._open:
            self.found[self._open[-1]][2] += data

    def tags(self, tag: str) -> list[tuple[dict, str, dict]]:
        """(attributes, text, the parent's attributes) of every ``tag`` element."""
        return [
            (attrs, text, self.found[parent][1] if parent >= 0 else {})
            for name, attrs, text, parent in self.found
            if name == tag
        ]
