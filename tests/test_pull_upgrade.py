"""Issue 21 at the level the user acts: project A packages a pipeline in versions 0.1.0, 0.2.0,
0.3.0 (its ``__version__``) onto the team's package index; project B pulls it by a version range
under an alias, edits it with git, and upgrades: clean merges keep B's edits, a same-line change
ends in inline markers, the record is the lock, a tampered archive is refused."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest

GIT = ["git", "-c", "user.name=Team", "-c", "user.email=team@example.invalid"]
NODES = '''"""The steps of the {name} pipeline: plain functions, easy to test."""

SUFFIX = "{suffix}"


def shout(text: str) -> str:
    return {shout}


def greet(greeting: str) -> str:
    return f"{{greeting}} from {name}"
'''

TEST = """from {package}.pipelines.{name} import nodes


def test_greet():
    assert nodes.greet("hi") == "hi from {name}"


def test_shout():
    assert nodes.shout(" hey ").startswith("HEY")
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True, text=True).stdout


def ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def one_line_error(result, message: str):
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [message], result.stderr
    return result


def package_name(root: Path) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text())["tool"]["piperack"]["python_package"]


def pulled(root: Path) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())["tool"]["piperack"]["pulled"]


class Publisher:
    """Project A: one pipeline, packaged at a version and published with `invoke publish` to the
    index that takes uploads only with a password; a version already there is replaced by hand in
    the index's folder (publish never replaces one): a tampered archive."""

    def __init__(self, root: Path, upload_index, run_invoke):
        self.root, self.upload, self.run_invoke = root, upload_index, run_invoke
        self.folder = upload_index.folder
        self.name = f"shared{uuid.uuid4().hex[:8]}"  # the index is shared by every run: a name of our own
        ok(run_invoke(root, "new-pipeline", self.name))
        self.code = root / "src" / package_name(root) / "pipelines" / self.name

    def publish(self, version: str, suffix: str = "", shout: str = "text.upper()", params: str = "") -> Path:
        (self.code / "__init__.py").write_text(f'"""The {self.name} pipeline."""\n\n__version__ = "{version}"\n')
        (self.code / "nodes.py").write_text(NODES.format(name=self.name, suffix=suffix, shout=shout))
        tests = self.root / "src/tests/pipelines" / self.name / "test_pipeline.py"
        tests.write_text(TEST.format(package=package_name(self.root), name=self.name))
        conf = self.root / "conf/base/parameters" / f"{self.name}.yml"
        conf.write_text(f"# Parameters of the {self.name} pipeline.\ngreeting: hello\n{params}")
        ok(self.run_invoke(self.root, "package", f"pipelines.{self.name}"))
        sdist = self.root / "dist" / f"{self.name}-{version}.tar.gz"
        if (self.folder / sdist.name).exists():
            return Path(shutil.copy2(sdist, self.folder / sdist.name))
        creds = {"TWINE_USERNAME": self.upload.user, "TWINE_PASSWORD": self.upload.password}
        ok(self.run_invoke(self.root, "publish", "--repository-url", self.upload.url, env=creds))
        return self.folder / sdist.name


@pytest.fixture
def two_projects(project, project_copy, run_invoke, upload_index, tmp_path):
    """(A's publisher, B's root, index URL): A has published 0.1.0; B is a git work tree."""
    url = upload_index.simple
    a = tmp_path / "a"
    shutil.copytree(project, a, symlinks=True)
    publisher = Publisher(a, upload_index, run_invoke)
    publisher.publish("0.1.0")
    b = project_copy
    git(b, "init", "-q")
    git(b, "add", "-A")
    git(b, "commit", "-qm", "baked")
    return publisher, b, url


def test_pull_by_range_lock_upgrade_and_conflict(two_projects, run_invoke, tree_hash):
    a, b, url = two_projects
    pkg = package_name(b)
    code = b / "src" / pkg / "pipelines" / "common"
    # B pulls by range from its manifest, under an alias.
    pyproject = b / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.piperack.pull]\n", f'[tool.piperack.pull]\n"{a.name}~=0.1" = {{alias = "common"}}\n'
        )
    )
    result = ok(run_invoke(b, "pull", "--all", "--index-url", url))
    assert f"pulled {a.name} 0.1.0 as common from {a.name}~=0.1" in result.stdout
    record = pulled(b)["pipelines.common"]
    assert {k: record[k] for k in ("source", "version", "index", "specifier", "package")} == {
        "source": f"{a.name}~=0.1",
        "version": "0.1.0",
        "index": url,
        "specifier": "~=0.1",
        "package": a.name,
    }
    assert f"from {pkg}.pipelines.common import nodes" in (code / "pipeline.py").read_text()
    git(b, "add", "-A")
    git(b, "commit", "-qm", "pulled shared as common")
    # B edits a line; A publishes 0.2.0 changing another line and adding a parameter.
    nodes = code / "nodes.py"
    nodes.write_text(nodes.read_text().replace("return text.upper()", "return text.upper().strip()"))
    git(b, "commit", "-qam", "ours: strip")
    a.publish("0.2.0", suffix="!", params="punctuation: '!'\n")
    # B's CI notices: outdated --check fails naming it.
    before = tree_hash(b)
    one_line_error(
        run_invoke(b, "outdated", "--check"),
        "error: 1 pulled pipeline(s) behind their index: pipelines.common (0.1.0 -> 0.2.0)",
    )
    # The record is a lock: --all keeps what is recorded.
    result = ok(run_invoke(b, "pull", "--all", "--index-url", url))
    assert f"kept pipelines.common: {a.name} 0.1.0, as recorded" in result.stdout
    assert tree_hash(b) == before
    # --dry-run and --diff show the merge and write nothing.
    result = ok(run_invoke(b, "pull", "--upgrade", "common", "--dry-run"))
    assert f"would upgrade pipelines.common: 0.1.0 -> {a.name} 0.2.0 (from {a.name}~=0.1)" in result.stdout
    assert f"  merge     src/{pkg}/pipelines/common/nodes.py" in result.stdout
    assert "  update    conf/base/parameters/common.yml" in result.stdout
    result = ok(run_invoke(b, "pull", "--upgrade", a.name, "--diff"))
    assert '-SUFFIX = ""\n+SUFFIX = "!"\n' in result.stdout
    assert "+punctuation: '!'\n" in result.stdout
    assert tree_hash(b) == before
    # --all --upgrade takes the newest the range allows, keeping B's edit.
    result = ok(run_invoke(b, "pull", "--all", "--upgrade"))
    assert f"upgraded pipelines.common to {a.name} 0.2.0; recorded in pyproject.toml" in result.stdout
    merged = nodes.read_text()
    assert 'SUFFIX = "!"' in merged and "return text.upper().strip()" in merged
    assert (b / "conf/base/parameters/common.yml").read_text().endswith("punctuation: '!'\n")
    assert pulled(b)["pipelines.common"]["version"] == "0.2.0"
    ok(run_invoke(b, "test", "--args", "src/tests/pipelines/common -p no:cacheprovider"))
    git(b, "commit", "-qam", "upgraded common to 0.2.0")
    # 0.3.0 changes the line B changed: inline markers, the conflict listed, exit 1, record unchanged.
    a.publish("0.3.0", suffix="!", shout="text.upper() + SUFFIX", params="punctuation: '!'\n")
    record = (b / "pyproject.toml").read_text()
    rel = f"src/{pkg}/pipelines/common/nodes.py"
    one_line_error(
        run_invoke(b, "pull", "--upgrade", "common"),
        f"error: 1 file(s) with conflicts, marked inline (<<<<<<< project … >>>>>>> {a.name} 0.3.0): {rel}; "
        "resolve them, then `invoke pull --upgrade common --to 0.3.0 --resolved` records it; "
        "the record stays at pipelines.common 0.2.0",
    )
    assert (
        "<<<<<<< project\n    return text.upper().strip()\n=======\n"
        f"    return text.upper() + SUFFIX\n>>>>>>> {a.name} 0.3.0\n"
    ) in nodes.read_text()
    assert (b / "pyproject.toml").read_text() == record
    # Files without a conflict are merged all the same (here: the version in __init__.py).
    assert git(b, "status", "--porcelain") == f" M src/{pkg}/pipelines/common/__init__.py\n M {rel}\n"
    # The team resolves the conflict, and records 0.3.0 (refused while a marker is left).
    before = tree_hash(b)
    one_line_error(
        run_invoke(b, "pull", "--upgrade", "common", "--to", "0.3.0", "--resolved"),
        f"error: pipelines.common: conflict markers are still in {rel}; resolve them, then run --resolved again",
    )
    assert tree_hash(b) == before
    resolved = nodes.read_text().split("<<<<<<< project\n")[0] + "    return (text.upper() + SUFFIX).strip()\n"
    resolved += nodes.read_text().split(f">>>>>>> {a.name} 0.3.0\n")[1]
    nodes.write_text(resolved)
    result = ok(run_invoke(b, "pull", "--upgrade", "common", "--to", "0.3.0", "--resolved"))
    assert f"recording pipelines.common at {a.name} 0.3.0: conflicts resolved" in result.stdout
    assert nodes.read_text() == resolved
    assert pulled(b)["pipelines.common"]["version"] == "0.3.0"
    ok(run_invoke(b, "test", "--args", "src/tests/pipelines/common -p no:cacheprovider"))
    git(b, "checkout", "--", ".")
    # The record is a lock: a recorded module that is missing (a fresh clone that does not commit
    # pulled code) comes back at its recorded version, 0.2.0, though 0.3.0 is in range.
    for rel_dir in (code, b / "src/tests/pipelines/common"):
        shutil.rmtree(rel_dir)
    (b / "conf/base/parameters/common.yml").unlink()
    record = (b / "pyproject.toml").read_text()
    result = ok(run_invoke(b, "pull", "--all"))
    assert f"pulled {a.name} 0.2.0 as common" in result.stdout
    assert git(b, "status", "--porcelain") == f" M {rel}\n"  # 0.2.0 as published: B's edit is in git only
    assert "return text.upper()\n" in nodes.read_text()
    assert (b / "pyproject.toml").read_text() == record
    # The manifest's range moves on: --all --upgrade follows it, and the record with it.
    pyproject.write_text(pyproject.read_text().replace(f'"{a.name}~=0.1" = ', f'"{a.name}>=0.3,<1" = '))
    result = ok(run_invoke(b, "pull", "--all", "--upgrade"))
    assert f"upgrading pipelines.common: 0.2.0 -> {a.name} 0.3.0 (from {a.name}>=0.3,<1)" in result.stdout
    record = pulled(b)["pipelines.common"]
    assert (record["version"], record["source"], record["specifier"]) == ("0.3.0", f"{a.name}>=0.3,<1", ">=0.3,<1")
    assert "return text.upper() + SUFFIX\n" in nodes.read_text()


def test_a_tampered_archive_behind_a_recorded_version_is_refused(two_projects, run_invoke, tree_hash):
    a, b, url = two_projects
    ok(run_invoke(b, "pull", f"{a.name}>=0.1,<1", "--alias", "common", "--index-url", url))
    a.publish("0.2.0", suffix="!")
    git(b, "add", "-A")
    git(b, "commit", "-qm", "pulled")
    # Someone replaces 0.1.0 on the index with other bytes.
    original = a.folder / f"{a.name}-0.1.0.tar.gz"
    tampered = a.publish("0.1.0", suffix="?")
    assert tampered == original
    before = tree_hash(b)
    result = run_invoke(b, "pull", "--upgrade", "common")
    assert result.returncode == 1, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: pipelines.common: the archive behind the recorded version 0.1.0 changed (sha256 "
    ), result.stderr
    assert errors[0].endswith("…); refused")
    assert tree_hash(b) == before
    pkg = package_name(b)
    shutil.rmtree(b / "src" / pkg / "pipelines" / "common")
    before = tree_hash(b)
    pyproject = b / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.piperack.pull]\n", f'[tool.piperack.pull]\n"{a.name}>=0.1,<1" = {{alias = "common"}}\n'
        )
    )
    before = tree_hash(b)
    result = run_invoke(b, "pull", "--all")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f'error: [tool.piperack.pull] "{a.name}>=0.1,<1": the archive behind the recorded version 0.1.0 changed' in (
        result.stderr
    )
    assert tree_hash(b) == before


def test_pre_releases_only_with_pre(two_projects, run_invoke, tree_hash):
    a, b, url = two_projects
    a.publish("0.2.0rc1", suffix="rc")
    before = tree_hash(b)
    one_line_error(
        run_invoke(b, "pull", f"{a.name}>0.1", "--index-url", url),
        f"error: {a.name}>0.1: no sdist found matching it (searched {url}); only pre-releases match "
        "(newest 0.2.0rc1): pass --pre to take one",
    )
    assert tree_hash(b) == before
    ok(run_invoke(b, "pull", f"{a.name}~=0.1", "--alias", "common", "--index-url", url))
    assert pulled(b)["pipelines.common"]["version"] == "0.1.0"  # 0.2.0rc1 is in range, but a pre-release
    git(b, "add", "-A")
    git(b, "commit", "-qm", "pulled")
    result = ok(run_invoke(b, "pull", "--upgrade", "common"))
    assert f"pipelines.common: {a.name} 0.1.0 is the newest its range allows" in result.stdout
    result = ok(run_invoke(b, "pull", "--upgrade", "common", "--pre"))
    assert f"upgraded pipelines.common to {a.name} 0.2.0rc1" in result.stdout
    record = pulled(b)["pipelines.common"]
    assert (record["version"], record["pre"]) == ("0.2.0rc1", True)
    code = b / "src" / package_name(b) / "pipelines" / "common"
    assert 'SUFFIX = "rc"' in (code / "nodes.py").read_text()
    ok(run_invoke(b, "pull", "--upgrade", "common", "--to", "0.1.0"))  # --to: any version, even back
    assert pulled(b)["pipelines.common"]["version"] == "0.1.0"


def test_uncommitted_edits_are_never_merged_over_without_allow_dirty(two_projects, run_invoke, tree_hash):
    """B edits its pulled copy and does not commit; 0.2.0 changes the same files. The upgrade is
    refused as update-project refuses (merged in place, B's work would be mixed with upstream's past
    undoing by git); --dry-run and --diff say so; --allow-dirty merges, keeping every edited line."""
    a, b, url = two_projects
    pkg = package_name(b)
    ok(run_invoke(b, "pull", f"{a.name}~=0.1", "--alias", "common", "--index-url", url))
    git(b, "add", "-A")
    git(b, "commit", "-qm", "pulled shared as common")
    nodes = b / "src" / pkg / "pipelines" / "common" / "nodes.py"
    params = b / "conf/base/parameters/common.yml"
    test = b / "src/tests/pipelines/common/test_pipeline.py"
    nodes.write_text(nodes.read_text().replace("return text.upper()", "return text.upper().strip()"))
    params.write_text(params.read_text().replace("greeting: hello", "greeting: howdy"))
    test.write_text(test.read_text() + "\n\ndef test_ours():\n    assert nodes.shout('a') == 'A!'\n")
    ours = {path: path.read_bytes() for path in (nodes, params, test)}
    a.publish("0.2.0", suffix="!", params="punctuation: '!'\n")
    before = tree_hash(b)
    rel_nodes, rel_params = f"src/{pkg}/pipelines/common/nodes.py", "conf/base/parameters/common.yml"
    warning = (
        f"warning: uncommitted changes in 2 file(s) the upgrade would merge: {rel_params}, {rel_nodes} "
        "(commit or stash them, or pass --allow-dirty)"
    )
    result = ok(run_invoke(b, "pull", "--upgrade", "common", "--dry-run"))
    assert f"  conflict  {rel_params}  (1 conflict(s) marked inline; uncommitted changes)\n" in result.stdout
    assert f"  merge     {rel_nodes}  (uncommitted changes)\n" in result.stdout
    assert result.stderr.splitlines() == [warning]
    result = ok(run_invoke(b, "pull", "--upgrade", "common", "--diff"))
    assert '-SUFFIX = ""\n+SUFFIX = "!"\n' in result.stdout
    assert "<<<<<<< project\n greeting: howdy\n" in result.stdout  # B's line, kept inside the markers
    assert result.stderr.splitlines() == [warning]
    assert tree_hash(b) == before
    for args in ([], ["--all"]):
        if args:
            pyproject = b / "pyproject.toml"
            pyproject.write_text(
                pyproject.read_text().replace(
                    "[tool.piperack.pull]\n", f'[tool.piperack.pull]\n"{a.name}~=0.1" = {{alias = "common"}}\n'
                )
            )
            git(b, "commit", "-qm", "manifest", "--", "pyproject.toml")
            before = tree_hash(b)
        one_line_error(
            run_invoke(b, "pull", "--upgrade", *(args or ["common"])),
            f"error: uncommitted changes in 2 file(s) the upgrade would merge: {rel_params}, {rel_nodes} "
            "(commit or stash them, or pass --allow-dirty)",
        )
        assert tree_hash(b) == before
        assert {path: path.read_bytes() for path in ours} == ours
        assert pulled(b)["pipelines.common"]["version"] == "0.1.0"
    # --allow-dirty merges into them: every line B wrote is still there (one inside markers).
    result = run_invoke(b, "pull", "--upgrade", "common", "--allow-dirty")
    one_line_error(
        result,
        f"error: 1 file(s) with conflicts, marked inline (<<<<<<< project … >>>>>>> {a.name} 0.2.0): {rel_params}; "
        "resolve them, then `invoke pull --upgrade common --to 0.2.0 --resolved` records it; "
        "the record stays at pipelines.common 0.1.0",
    )
    assert 'SUFFIX = "!"' in nodes.read_text() and "return text.upper().strip()\n" in nodes.read_text()
    assert params.read_text() == (
        f"# Parameters of the {a.name} pipeline.\n<<<<<<< project\ngreeting: howdy\n=======\n"
        f"greeting: hello\npunctuation: '!'\n>>>>>>> {a.name} 0.2.0\n"
    )
    assert test.read_bytes() == ours[test]  # 0.2.0 did not change the test: B's test is untouched
