"""`invoke build-reqs` as the user runs it: bake, edit requirements.in, build-reqs, files on disk.

The resolvers reach PyPI (reachable here and in CI). Both are pointed at PyPI alone, so their pins
are comparable: pip-compile would otherwise read this machine's pip.conf (extra indexes and
find-links), which uv ignores.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts import kitlib

PYPI = "https://pypi.org/simple"
PYPI_ENV = {
    "PIP_CONFIG_FILE": os.devnull,  # no pip.conf: no extra index, no find-links
    "PIP_INDEX_URL": PYPI,
    "PIP_EXTRA_INDEX_URL": "",
    "PIP_FIND_LINKS": "",
    "UV_DEFAULT_INDEX": PYPI,
    "UV_NO_CONFIG": "1",
}


@pytest.fixture
def build(run_invoke):
    def _build(root, *args, **kwargs):
        return run_invoke(root, "build-reqs", *args, env={**PYPI_ENV, **kwargs.pop("env", {})}, **kwargs)

    return _build


def read_requirements(text: str) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    """{(canonical name, marker): (specifier, sorted hashes)} of a requirements file, read by a plain
    parser of pip's requirements-file format (backslash continuations, ``#`` comments, ``--hash``
    options) and packaging's ``Requirement``, independent of piperack's own reader."""
    out: dict = {}
    for line in text.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not line:
            continue
        requirement, *options = line.split(" --")
        assert all(option.startswith("hash=sha256:") for option in options), line
        req = Requirement(requirement.strip())
        key = (canonicalize_name(req.name), str(req.marker or ""))
        assert key not in out, f"{key} listed twice"
        out[key] = (str(req.specifier), tuple(sorted(option.removeprefix("hash=") for option in options)))
    return out


def _pins(root: Path) -> dict:
    return read_requirements((root / "requirements.txt").read_text())


def _versions(root: Path) -> dict:
    """{name: "==version"} of the pins that hold on every platform (no marker)."""
    return {name: pin for (name, marker), (pin, _) in _pins(root).items() if not marker}


def _one_line(res) -> str:
    """The only line on stderr (asserting there is exactly one)."""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def _append(path: Path, line: str) -> None:
    text = path.read_text()
    path.write_text(text + ("" if text.endswith("\n") else "\n") + line + "\n")


def test_fresh_project_is_up_to_date_and_rebuilds_identically(project_copy, build, tree_hash):
    before = tree_hash(project_copy)
    res = build(project_copy, "--check")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "requirements.txt is up to date with requirements.in (uv)\n"
    assert tree_hash(project_copy) == before

    original = (project_copy / "requirements.txt").read_text()
    res = build(project_copy)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "requirements.txt compiled from requirements.in with uv: no pin changed\n"
    assert (project_copy / "requirements.txt").read_text() == original
    assert original.startswith(
        "# Pinned runtime dependencies, compiled from requirements.in. Regenerate with: invoke build-reqs\n"
    )


def test_check_fails_on_stale_requirements_and_writes_nothing(project_copy, build, tree_hash):
    _append(project_copy / "requirements.in", "tomli-w>=1.0")
    before = tree_hash(project_copy)
    res = build(project_copy, "--check")
    assert res.returncode == 1
    assert re.fullmatch(
        r"error: requirements\.txt is stale against requirements\.in \(\+ tomli-w==[\d.]+\): run `invoke build-reqs`",
        _one_line(res),
    ), res.stderr
    assert tree_hash(project_copy) == before
    assert not list(project_copy.glob(".requirements.txt.*"))


def test_check_fails_when_a_pin_breaks_requirements_in(project_copy, build):
    txt = project_copy / "requirements.txt"
    txt.write_text(re.sub(r"^pandas==\S+", "pandas==2.0.3", txt.read_text(), flags=re.M))
    res = build(project_copy, "--check")
    assert res.returncode == 1
    assert re.fullmatch(
        r"error: requirements\.txt is stale against requirements\.in \(~ pandas ==2\.0\.3 -> ==[\d.]+\): "
        r"run `invoke build-reqs`",
        _one_line(res),
    ), res.stderr


def test_new_requirement_is_pinned_and_other_pins_stay(project_copy, build):
    before = _versions(project_copy)
    _append(project_copy / "requirements.in", "tomli-w>=1.0")
    res = build(project_copy)
    assert res.returncode == 0, res.stderr
    text = (project_copy / "requirements.txt").read_text()
    assert re.search(r"^tomli-w==[\d.]+\n    # via -r requirements.in$", text, flags=re.M)
    after = _versions(project_copy)
    assert {k: v for k, v in after.items() if k != "tomli-w"} == before
    assert res.stdout == (
        f"requirements.txt compiled from requirements.in with uv: 1 added\n  + tomli-w{after['tomli-w']}\n"
    )
    assert build(project_copy, "--check").returncode == 0


def test_upgrade_package_and_upgrade(project_copy, build):
    txt = project_copy / "requirements.txt"
    txt.write_text(re.sub(r"^requests==\S+", "requests==2.31.0", txt.read_text(), flags=re.M))
    txt.write_text(re.sub(r"^idna==\S+", "idna==3.6", txt.read_text(), flags=re.M))
    assert build(project_copy).returncode == 0
    assert _versions(project_copy)["requests"] == "==2.31.0"  # a pin that still fits is kept
    assert _versions(project_copy)["idna"] == "==3.6"

    res = build(project_copy, "--upgrade-package", "requests")
    assert res.returncode == 0, res.stderr
    upgraded = _versions(project_copy)["requests"]
    assert upgraded != "==2.31.0"
    assert _versions(project_copy)["idna"] == "==3.6"
    assert res.stdout == (
        f"requirements.txt compiled from requirements.in with uv: 1 changed\n  ~ requests ==2.31.0 -> {upgraded}\n"
    )

    res = build(project_copy, "--upgrade")
    assert res.returncode == 0, res.stderr
    assert _versions(project_copy)["idna"] != "==3.6"


@pytest.mark.parametrize("resolver", ["uv", "pip-tools"])
def test_unresolvable_set_explains_and_leaves_files_unchanged(project_copy, build, tree_hash, resolver):
    _append(project_copy / "requirements.in", "pandas<1")  # with pandas>=2.1 already there
    before = tree_hash(project_copy)
    res = build(project_copy, "--resolver", resolver)
    assert res.returncode == 1
    label = "uv" if resolver == "uv" else "pip-compile"
    first, *reason = res.stderr.splitlines()
    assert first == f"error: {label} could not compile requirements.in; requirements.txt left unchanged:"
    assert reason and all(line.startswith("  ") for line in reason), res.stderr  # the resolver's own words
    assert "pandas<1" in res.stderr and "pandas>=2.1" in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 9
    assert tree_hash(project_copy) == before


def test_missing_requirements_in_is_created_from_top_level_requirements(project_copy, build):
    top = [canonicalize_name(name) for (name, _) in read_requirements((project_copy / "requirements.in").read_text())]
    assert len(top) >= 4
    (project_copy / "requirements.in").unlink()
    before = _versions(project_copy)
    res = build(project_copy)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (
        "created requirements.in from requirements.txt's top-level requirements\n"
        "requirements.txt compiled from requirements.in with uv: no pin changed\n"
    )
    created = read_requirements((project_copy / "requirements.in").read_text())
    assert created == {(name, ""): (before[name], ()) for name in top}
    assert _versions(project_copy) == before


def test_missing_requirements_in_and_failed_compile_leaves_both_as_they_were(project_copy, build, tree_hash):
    (project_copy / "requirements.in").unlink()
    (project_copy / "requirements.txt").write_text("pandas<1\npandas>2\n")
    before = tree_hash(project_copy)
    res = build(project_copy)
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == (
        "error: uv could not compile requirements.in; requirements.txt left unchanged:"
    ), res.stderr
    assert tree_hash(project_copy) == before
    assert not (project_copy / "requirements.in").exists()


def test_no_requirement_files_at_all(project_copy, build, tree_hash):
    (project_copy / "requirements.in").unlink()
    (project_copy / "requirements.txt").unlink()
    before = tree_hash(project_copy)
    res = build(project_copy)
    assert res.returncode == 1
    assert _one_line(res) == (
        f"error: no requirements.in or requirements.txt in {project_copy}: "
        "create requirements.in listing the project's top-level requirements"
    )
    assert tree_hash(project_copy) == before


def test_generate_hashes(project_copy, build):
    before = _pins(project_copy)
    assert before and not any(hashes for _, hashes in before.values())
    res = build(project_copy, "--generate-hashes")
    assert res.returncode == 0, res.stderr
    entries = _pins(project_copy)
    assert all(hashes for _, hashes in entries.values())
    # the same pins, each now with its hashes: every one of them is reported as changed by its hashes
    assert {key: pin for key, (pin, _) in entries.items()} == {key: pin for key, (pin, _) in before.items()}
    changed = [f"  ~ {name}{' ; ' + marker if marker else ''} (hashes)" for name, marker in sorted(entries)]
    assert res.stdout.splitlines() == [
        f"requirements.txt compiled from requirements.in with uv: {len(entries)} changed",
        *changed,
    ]
    assert (
        (project_copy / "requirements.txt").read_text().splitlines()[0].endswith("invoke build-reqs --generate-hashes")
    )
    check = build(project_copy, "--check")  # hashes compared like with like
    assert check.returncode == 0, check.stderr
    assert check.stdout == "requirements.txt is up to date with requirements.in (uv)\n"


def test_universal_resolution_adds_marker_pins(project_copy, build):
    _append(project_copy / "requirements.in", "pytest>=8")  # pytest needs colorama on Windows only
    assert build(project_copy).returncode == 0
    assert "colorama" not in _versions(project_copy)
    before = _pins(project_copy)
    res = build(project_copy, "--universal", "--python-version", "3.11")
    assert res.returncode == 0, res.stderr
    after = _pins(project_copy)
    assert after.keys() - before.keys() == {("colorama", 'sys_platform == "win32"')}
    colorama = after[("colorama", 'sys_platform == "win32"')][0]
    assert res.stdout == (
        "requirements.txt compiled from requirements.in with uv: 1 added\n"
        f'  + colorama{colorama} ; sys_platform == "win32"\n'
    )
    head = (project_copy / "requirements.txt").read_text().splitlines()[0]
    assert head.endswith("invoke build-reqs --python-version 3.11 --universal")


def test_python_version_resolves_for_another_python(project_copy, build):
    _append(project_copy / "requirements.in", "pytest>=8")  # needs exceptiongroup and tomli below 3.11
    assert build(project_copy).returncode == 0
    assert "exceptiongroup" not in _versions(project_copy)
    res = build(project_copy, "--python-version", "3.10")
    assert res.returncode == 0, res.stderr
    assert {"exceptiongroup", "tomli"} <= _versions(project_copy).keys()
    assert f"  + exceptiongroup{_versions(project_copy)['exceptiongroup']}" in res.stdout.splitlines()


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--resolver", "pip-tools", "--universal"],
            "--universal needs uv (pip-compile has no universal resolution); install uv",
        ),
        (
            ["--resolver", "pip-tools", "--python-version", "3.99"],
            f"--python-version 3.99 needs uv: pip-compile resolves for the Python it runs on "
            f"({sys.version_info[0]}.{sys.version_info[1]}); install uv (`pip install uv`)",
        ),
        (["--python-version", "three"], "--python-version 'three': expected X.Y, e.g. 3.12"),
        (["--resolver", "poetry"], "unknown resolver 'poetry': use one of uv, pip-tools"),
        (
            ["--check", "--upgrade"],
            "--check compares requirements.txt with requirements.in: it cannot be combined with --upgrade",
        ),
    ],
)
def test_option_errors(project, build, tree_hash, args, message):
    before = tree_hash(project)
    res = build(project, *args)
    assert res.returncode == 1
    assert _one_line(res) == f"error: {message}"
    assert tree_hash(project) == before


def test_extra_resolver_args_pass_through(project_copy, build):
    res = build(project_copy, "--args", "--no-annotate")
    assert res.returncode == 0, res.stderr
    assert "# via" not in (project_copy / "requirements.txt").read_text()


def test_both_resolvers_give_the_same_pins(project_copy, build):
    _append(project_copy / "requirements.in", "click>=8")
    txt = project_copy / "requirements.txt"
    results = {}
    # Both read the index afresh: an HTTP cache (PyPI pages live 10 minutes) would let one resolver
    # see a release the other does not yet, and the pins would differ for that reason alone.
    fresh = {"uv": {"UV_NO_CACHE": "1"}, "pip-tools": {"PIP_NO_CACHE_DIR": "1"}}
    for resolver in ("uv", "pip-tools"):
        txt.unlink()  # no previous pins: each resolver picks on its own
        res = build(project_copy, "--resolver", resolver, env=fresh[resolver])
        assert res.returncode == 0, res.stderr
        results[resolver] = _pins(project_copy)
        assert re.search(r"^click==\S+\n    # via -r requirements.in$", txt.read_text(), flags=re.M)
    assert results["uv"] == results["pip-tools"]
    assert len(results["uv"]) >= 10


def _bare_venv(tmp_path: Path, wheelhouse: Path) -> Path:
    """A virtualenv with piperack, invoke and packaging but neither uv nor pip-tools (both are
    dependencies of piperack: a user who removed them)."""
    return kitlib.small_venv(tmp_path / "bare", ["invoke>=2.2", "packaging>=24"], wheelhouse)


def test_no_resolver_installed_is_a_one_line_error(project_copy, tmp_path, tree_hash, wheelhouse):
    venv = _bare_venv(tmp_path, wheelhouse)
    path = os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"])
    assert not shutil.which("uv", path=path) and not shutil.which("pip-compile", path=path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=path, VIRTUAL_ENV=str(venv))
    before = tree_hash(project_copy)
    for args, message in [
        ([], "error: no resolver found: install uv (`pip install uv`) or pip-tools (`pip install pip-tools`)"),
        (["--resolver", "pip-tools"], "error: pip-compile is not installed: install it with `pip install pip-tools`"),
        (
            ["--resolver", "uv"],
            "error: uv is not installed: install it with `pip install uv` (or use --resolver pip-tools)",
        ),
    ]:
        res = subprocess.run(
            [str(venv / "bin" / "invoke"), "build-reqs", *args],
            cwd=project_copy,
            env=env,
            capture_output=True,
            text=True,
        )
        assert res.returncode == 1
        assert res.stderr == message + "\n"
    assert tree_hash(project_copy) == before


def test_pull_a_package_with_a_new_requirement_then_build_reqs_then_install(project_copy, build, run_invoke, tmp_path):
    from tests.pull_support import sdist_bytes

    tarball = tmp_path / "tomlout-0.1.0.tar.gz"
    tarball.write_bytes(sdist_bytes("tomlout", requires=["tomli-w>=1.0"]))
    res = run_invoke(project_copy, "pull", str(tarball), env=PYPI_ENV)
    assert res.returncode == 0, res.stderr
    assert ("tomli-w", "") in read_requirements((project_copy / "requirements.in").read_text())
    assert "tomli-w>=1.0" in (project_copy / "requirements.in").read_text().splitlines()

    res = build(project_copy)
    assert res.returncode == 0, res.stderr
    pin = _versions(project_copy)["tomli-w"]
    assert re.fullmatch(r"==[\d.]+", pin)

    # the pins install (the whole file, into a fresh environment) and the new one imports
    target = tmp_path / "target"
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    uv_cmd = [uv] if uv else [sys.executable, "-m", "uv"]
    env = {**os.environ, **PYPI_ENV}
    subprocess.run([*uv_cmd, "venv", "--quiet", "--python", sys.executable, str(target)], check=True, env=env)
    subprocess.run(
        [
            *uv_cmd,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(target / "bin" / "python"),
            "-r",
            str(project_copy / "requirements.txt"),
        ],
        check=True,
        env=env,
    )
    out = subprocess.run(
        [str(target / "bin" / "python"), "-c", "import importlib.metadata as m, tomli_w; print(m.version('tomli-w'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert "==" + out == pin
