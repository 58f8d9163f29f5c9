"""Unit tests of issue 21's pull by range, the record as a lock and ``pull --upgrade``, in-process
on the minimal project (archives from files; the index path is tested at the user's level in
tests/test_pull_upgrade.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from piperack import pull as engine
from piperack.errors import PiperackError
from piperack.indexes import pick_version
from piperack.merge import merge_one
from piperack.options import PullOptions
from piperack.project import find_project
from piperack.pull.record import read_pulled
from tests.pull_support import sdist_bytes, write_sdist

VERSIONS = [Version(v) for v in ("0.1.0", "0.1.5", "0.2.0", "0.3.0rc1", "1.0.0", "1.1.0b2")]
LABELS = ("project", "shared 0.1.0 (base)", "shared 0.2.0")


@pytest.mark.parametrize(
    ("spec", "pre", "want"),
    [
        ("~=0.1", False, "0.3.0rc1" and "0.2.0"),  # ~=0.1 is >=0.1,<1: the pre-release is not taken
        ("~=0.1", True, "0.3.0rc1"),
        ("~=0.1.0", False, "0.1.5"),
        (">=0.2,<1", False, "0.2.0"),
        (">=0.2,<1", True, "0.3.0rc1"),
        ("", False, "1.0.0"),
        ("", True, "1.1.0b2"),
        ("==0.3.0rc1", False, "0.3.0rc1"),  # named exactly: a pre-release the user asked for
        (">=2", True, None),
    ],
)
def test_pick_version_takes_the_highest_in_range(spec, pre, want):
    got = pick_version(VERSIONS, SpecifierSet(spec), pre)
    assert (str(got) if got else None) == want


def test_only_pre_releases_in_range_are_not_taken_without_pre():
    assert pick_version([Version("0.3.0rc1")], SpecifierSet(">=0.3"), pre=False) is None


def test_merge_one_decides_each_file():
    base = b"a\nb\nc\nd\ne\n"
    theirs = b"a\nB\nc\nd\ne\n"
    assert merge_one(base, base, theirs, LABELS, upstream="u").action == "update"
    assert merge_one(b"a\nb\nc\nd\nE\n", base, base, LABELS, upstream="u").action == "keep"
    merged = merge_one(b"a\nb\nc\nd\nE\n", base, theirs, LABELS, upstream="u")
    assert (merged.action, merged.data) == ("merge", b"a\nB\nc\nd\nE\n")
    clash = merge_one(b"a\nX\nc\nd\ne\n", base, theirs, LABELS, upstream="u")
    assert clash.action == "conflict" and clash.note == "1 conflict(s) marked inline"
    assert clash.data == b"a\n<<<<<<< project\nX\n=======\nB\n>>>>>>> shared 0.2.0\nc\nd\ne\n"
    assert merge_one(None, None, theirs, LABELS, upstream="u").action == "add"
    assert merge_one(base, base, None, LABELS, upstream="u").action == "delete"
    kept = merge_one(b"mine\n", base, None, LABELS, upstream="shared 0.2.0")
    assert (kept.action, kept.note) == ("keep", "dropped by shared 0.2.0; kept: the team changed it")
    assert merge_one(theirs, base, theirs, LABELS, upstream="u").action == "same"
    assert merge_one(b"\0bin", b"\0old", b"\0new", LABELS, upstream="u").action == "conflict"


def _versions(tmp_path, *changes):
    """shared 0.1.0, 0.2.0, …: each changes one line of helpers.py (``changes``: version -> line)."""
    paths = {}
    for version, line in changes:
        code = {
            "__init__.py": f'__version__ = "{version}"\n',
            "nodes.py": "from shared.helpers import double\n\n\ndef run_nodes(p):\n    return double(p['factor'])\n",
            "helpers.py": f"def double(x):\n    # {line}\n    return 2 * x\n\n\nLIMIT = 10\n",
            "pipeline.py": "from .nodes import run_nodes\n\n\ndef run(params, catalog):\n    return {}\n",
        }
        paths[version] = write_sdist(tmp_path / "dist" / version, "shared", version, code=code)
    return paths


def test_upgrade_from_files_keeps_edits_and_moves_the_record(mini, tmp_path, capsys):
    v = _versions(tmp_path, ("0.1.0", "first"), ("0.2.0", "second"))
    engine.pull(PullOptions(source=str(v["0.1.0"]), alias="common"), project=find_project(mini))
    helpers = mini / "src/demo/pipelines/common/helpers.py"
    helpers.write_text(helpers.read_text().replace("LIMIT = 10", "LIMIT = 99"))
    engine.pull(PullOptions(source="common", upgrade=True, to=str(v["0.2.0"])), project=find_project(mini))
    assert helpers.read_text() == "def double(x):\n    # second\n    return 2 * x\n\n\nLIMIT = 99\n"
    nodes = (mini / "src/demo/pipelines/common/nodes.py").read_text()
    assert nodes.startswith("from demo.pipelines.common.helpers import double")  # the alias rename held
    record = read_pulled(find_project(mini))["pipelines.common"]
    assert (record["version"], record["source"], record["package"]) == ("0.2.0", str(v["0.2.0"]), "shared")
    assert "upgraded pipelines.common to shared 0.2.0" in capsys.readouterr().out


def test_upgrade_conflict_is_inline_and_keeps_the_record(mini, tmp_path, tree_hash):
    v = _versions(tmp_path, ("0.1.0", "first"), ("0.2.0", "second"))
    engine.pull(PullOptions(source=str(v["0.1.0"]), alias="common"), project=find_project(mini))
    helpers = mini / "src/demo/pipelines/common/helpers.py"
    helpers.write_text(helpers.read_text().replace("# first", "# ours"))
    record_before = (mini / "pyproject.toml").read_text()
    with pytest.raises(PiperackError) as caught:
        engine.pull(PullOptions(source="shared", upgrade=True, to=str(v["0.2.0"])), project=find_project(mini))
    assert str(caught.value) == (
        "1 file(s) with conflicts, marked inline (<<<<<<< project … >>>>>>> shared 0.2.0): "
        "src/demo/pipelines/common/helpers.py; resolve them, then "
        f"`invoke pull --upgrade common --to {v['0.2.0']} --resolved` records it; "
        "the record stays at pipelines.common 0.1.0"
    )
    assert "<<<<<<< project\n    # ours\n=======\n    # second\n>>>>>>> shared 0.2.0\n" in helpers.read_text()
    assert (mini / "pyproject.toml").read_text() == record_before
    # --resolved records the new version once no marker is left, and merges nothing again.
    resolved = PullOptions(source="common", upgrade=True, to=str(v["0.2.0"]), resolved=True)
    before = tree_hash(mini)
    with pytest.raises(
        PiperackError,
        match=exact(
            "pipelines.common: conflict markers are still in src/demo/pipelines/common/helpers.py; "
            "resolve them, then run --resolved again"
        ),
    ):
        engine.pull(resolved, project=find_project(mini))
    assert tree_hash(mini) == before
    text = "def double(x):\n    # ours and second\n    return 2 * x\n\n\nLIMIT = 10\n"
    helpers.write_text(text)
    engine.pull(resolved, project=find_project(mini))
    assert helpers.read_text() == text
    assert read_pulled(find_project(mini))["pipelines.common"]["version"] == "0.2.0"


def test_upgrade_refuses_a_changed_base_and_writes_nothing(mini, tmp_path, tree_hash):
    v = _versions(tmp_path, ("0.1.0", "first"), ("0.2.0", "second"))
    engine.pull(PullOptions(source=str(v["0.1.0"]), alias="common"), project=find_project(mini))
    v["0.1.0"].write_bytes(sdist_bytes("shared", "0.1.0", code={"__init__.py": "# tampered\n"}))
    before = tree_hash(mini)
    with pytest.raises(PiperackError, match=r"^pipelines\.common: the archive behind the recorded version 0\.1\.0 "):
        engine.pull(PullOptions(source="common", upgrade=True, to=str(v["0.2.0"])), project=find_project(mini))
    assert tree_hash(mini) == before


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_upgrade_options_and_names_are_checked(mini, tmp_path):
    v = _versions(tmp_path, ("0.1.0", "first"))
    engine.pull(PullOptions(source=str(v["0.1.0"])), project=find_project(mini))
    cases = [
        (PullOptions(source="nope", upgrade=True), "nope: not a pulled module or package (pulled: pipelines.shared)"),
        (
            PullOptions(source="shared", upgrade=True, alias="x"),
            "--upgrade merges into the module where it was pulled; do not combine it with --alias",
        ),
        (PullOptions(source="shared", to="0.2"), "--to, --diff, --resolved and --allow-dirty go with --upgrade NAME"),
        (
            PullOptions(source="shared", allow_dirty=True),
            "--to, --diff, --resolved and --allow-dirty go with --upgrade NAME",
        ),
        (
            PullOptions(source="shared", upgrade=True, resolved=True),
            "--resolved records the version whose conflicts you resolved: give it as --upgrade NAME --to VERSION",
        ),
        (
            PullOptions(upgrade=True),
            "--upgrade NAME: give the pulled module (its name as pulled) or its package name, or --all",
        ),
        (
            PullOptions(source="shared", upgrade=True),
            f"pipelines.shared: pulled from {v['0.1.0']}, not from a "
            "package index: give the new archive with --to PATH_OR_URL",
        ),
    ]
    for options, message in cases:
        with pytest.raises(PiperackError, match=f"^{re.escape(message)}$"):
            engine.pull(options, project=find_project(mini))


def test_pull_all_keeps_present_entries_and_installs_the_recorded_archive(mini, tmp_path, capsys, tree_hash):
    v = _versions(tmp_path, ("0.1.0", "first"))
    (mini / "pyproject.toml").write_text(
        (mini / "pyproject.toml").read_text() + f'"{v["0.1.0"]}" = {{alias = "common"}}\n'
    )
    engine.pull(PullOptions(all_=True), project=find_project(mini))
    before = tree_hash(mini)
    engine.pull(PullOptions(all_=True), project=find_project(mini))  # a lock: present entries are kept
    assert tree_hash(mini) == before
    assert "kept pipelines.common: shared 0.1.0, as recorded" in capsys.readouterr().out
    import shutil

    shutil.rmtree(mini / "src/demo/pipelines/common")
    v["0.1.0"].write_bytes(sdist_bytes("shared", "0.1.0", code={"__init__.py": "# tampered\n"}))
    before = tree_hash(mini)
    with pytest.raises(PiperackError, match=r"the archive behind the recorded version 0\.1\.0 changed \(sha256 "):
        engine.pull(PullOptions(all_=True), project=find_project(mini))
    assert tree_hash(mini) == before


def test_a_kedro_micro_package_upgrades_the_same_way(mini, tmp_path, capsys):
    """The Kedro 0.18.14 sdist, and a 0.4.0 of it (version bumped, a node changed, a requirement
    added): pulled under an alias, edited, upgraded by a three-way merge."""
    import io
    import tarfile

    original = Path(__file__).resolve().parents[1] / "fixtures" / "kedro" / "ingest-0.3.0.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(original) as old, tarfile.open(fileobj=buf, mode="w:gz") as new:
        for member in old.getmembers():
            data = old.extractfile(member).read() if member.isfile() else None
            member.name = member.name.replace("ingest-0.3.0", "ingest-0.4.0", 1)
            if data is not None:
                if member.name.endswith("PKG-INFO"):
                    data = data.replace(b"Version: 0.3.0", b"Version: 0.4.0")
                    data = data.replace(
                        b"Requires-Dist: tabulate>=0.9", b"Requires-Dist: tabulate>=0.9\nRequires-Dist: pyyaml>=6"
                    )
                if member.name.endswith("ingest/nodes.py"):
                    data = b"# ingest 0.4.0\n" + data
                member.size = len(data)
                new.addfile(member, io.BytesIO(data))
            else:
                new.addfile(member)
    newer = tmp_path / "ingest-0.4.0.tar.gz"
    newer.write_bytes(buf.getvalue())
    engine.pull(PullOptions(source=str(original), alias="kedro_ingest"), project=find_project(mini))
    pipeline = mini / "src/demo/pipelines/kedro_ingest/pipeline.py"
    pipeline.write_text(pipeline.read_text() + "# ours\n")
    engine.pull(PullOptions(source="kedro_ingest", upgrade=True, to=str(newer)), project=find_project(mini))
    code = mini / "src/demo/pipelines/kedro_ingest"
    assert (code / "nodes.py").read_text().startswith("# ingest 0.4.0\n")
    assert pipeline.read_text().endswith("# ours\n")
    assert "from demo.pipelines.kedro_ingest.nodes import" in pipeline.read_text()
    assert (mini / "requirements.in").read_text().endswith("pyyaml>=6\n")
    record = read_pulled(find_project(mini))["pipelines.kedro_ingest"]
    assert (record["version"], record["package"]) == ("0.4.0", "ingest")
    out = capsys.readouterr().out
    assert "requirements.in: added pyyaml>=6" in out


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('"../x" = {source = "s", version = "0.1.0"}', "\"../x\": not a module path such as 'pipelines.ingest'"),
        ('"pipelines.x" = {source = "s", version = "one"}', "\"pipelines.x\": version 'one' is not a PEP 440 version"),
        (
            '"pipelines.x" = {source = "s", version = "0.1", sha256 = "zz"}',
            '"pipelines.x": sha256 must be 64 lowercase hexadecimal digits',
        ),
        ('"pipelines.x" = {source = "s", version = 1}', '"pipelines.x": version must be a str, got 1'),
    ],
)
def test_a_hand_edited_record_is_one_line_naming_the_entry(mini, tree_hash, entry, message):
    (mini / "pyproject.toml").write_text((mini / "pyproject.toml").read_text() + f"\n[tool.piperack.pulled]\n{entry}\n")
    before = tree_hash(mini)
    with pytest.raises(PiperackError, match=exact(f"pyproject.toml [tool.piperack.pulled] {message}")):
        engine.pull(PullOptions(source="x", upgrade=True), project=find_project(mini))
    assert tree_hash(mini) == before


@pytest.mark.parametrize("fail_at", [1, 2, 3])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_an_interrupted_upgrade_leaves_the_project_as_it_was(mini, tmp_path, tree_hash, monkeypatch, fail_at, exc):
    """The upgrade's writes (merged files, requirements.in, the record) are one transaction."""
    import os

    from piperack import fsutil

    v = _versions(tmp_path, ("0.1.0", "first"), ("0.2.0", "second"))
    engine.pull(PullOptions(source=str(v["0.1.0"]), alias="common"), project=find_project(mini))
    helpers = mini / "src/demo/pipelines/common/helpers.py"
    helpers.write_text(helpers.read_text().replace("LIMIT = 10", "LIMIT = 99"))
    before = tree_hash(mini)
    real_replace, calls = os.replace, {"n": 0}

    def flaky_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise exc("simulated failure")
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", flaky_replace)
    with pytest.raises(exc):
        engine.pull(PullOptions(source="common", upgrade=True, to=str(v["0.2.0"])), project=find_project(mini))
    monkeypatch.setattr(fsutil.os, "replace", real_replace)
    assert tree_hash(mini) == before
    assert not list(mini.glob(".piperack-backup-*"))


def test_a_changed_manifest_entry_is_what_all_upgrade_follows(mini, tmp_path, capsys):
    """The manifest names the new file: `pull --all` keeps the recorded module and says so;
    `pull --all --upgrade` merges the file the manifest names, and records it as the source."""
    v = _versions(tmp_path, ("0.1.0", "first"), ("0.2.0", "second"))
    pyproject = mini / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'"{v["0.1.0"]}" = {{alias = "common"}}\n')
    engine.pull(PullOptions(all_=True), project=find_project(mini))
    helpers = mini / "src/demo/pipelines/common/helpers.py"
    helpers.write_text(helpers.read_text().replace("LIMIT = 10", "LIMIT = 99"))
    pyproject.write_text(pyproject.read_text().replace(f'"{v["0.1.0"]}" = {{', f'"{v["0.2.0"]}" = {{', 1))
    capsys.readouterr()
    engine.pull(PullOptions(all_=True), project=find_project(mini))
    assert capsys.readouterr().out == (
        f'kept pipelines.common: shared 0.1.0, as recorded (not what [tool.piperack.pull] "{v["0.2.0"]}" '
        "asks for: `invoke pull --all --upgrade` moves it)\n"
        "nothing to pull: every entry of [tool.piperack.pull] is pulled as recorded\n"
    )
    engine.pull(PullOptions(all_=True, upgrade=True), project=find_project(mini))
    assert helpers.read_text() == "def double(x):\n    # second\n    return 2 * x\n\n\nLIMIT = 99\n"
    record = read_pulled(find_project(mini))["pipelines.common"]
    assert (record["version"], record["source"]) == ("0.2.0", str(v["0.2.0"]))
    capsys.readouterr()
    engine.pull(PullOptions(all_=True, upgrade=True), project=find_project(mini))
    assert capsys.readouterr().out == "pipelines.common: shared 0.2.0 is what its source holds\n"


@pytest.mark.parametrize(
    ("source", "recorded"),
    [
        ("shared~=0.1", "~=0.1"),
        ("shared>=0.3,<1", ">=0.3,<1"),  # as written (packaging would print <1,>=0.3)
        ("Shared_X==1.0", "==1.0"),
        ("shared", None),
        ("dist/shared-0.1.0.tar.gz", None),
        ("https://host/shared-0.1.0.tar.gz", None),
    ],
)
def test_the_recorded_specifier_is_the_range_as_written(source, recorded):
    from piperack.pull.lock import specifier_of

    assert specifier_of(source) == recorded


def test_all_upgrade_moves_the_record_of_the_modules_that_merged_cleanly(mini, tmp_path, capsys):
    v = _versions(tmp_path, ("0.1.0", "first"), ("0.2.0", "second"))
    w1 = write_sdist(tmp_path / "o1", "extra", "0.1.0")
    w2 = write_sdist(tmp_path / "o2", "extra", "0.2.0", requires=["tabulate>=0.9"])
    pyproject = mini / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'"{v["0.1.0"]}" = {{alias = "common"}}\n"{w1}" = {{}}\n')
    engine.pull(PullOptions(all_=True), project=find_project(mini))
    helpers = mini / "src/demo/pipelines/common/helpers.py"
    helpers.write_text(helpers.read_text().replace("# first", "# ours"))
    text = pyproject.read_text().replace(str(v["0.1.0"]), str(v["0.2.0"]), 1).replace(f'"{w1}"', f'"{w2}"', 1)
    pyproject.write_text(text)
    with pytest.raises(
        PiperackError, match=r"^1 file\(s\) with conflicts, .*the record stays at pipelines\.common 0\.1\.0$"
    ):
        engine.pull(PullOptions(all_=True, upgrade=True), project=find_project(mini))
    records = read_pulled(find_project(mini))
    assert (records["pipelines.common"]["version"], records["pipelines.extra"]["version"]) == ("0.1.0", "0.2.0")
    assert (mini / "requirements.in").read_text().endswith("tabulate>=0.9\n")
    assert "upgraded pipelines.extra to extra 0.2.0" in capsys.readouterr().out


GIT = ["git", "-c", "user.name=Team", "-c", "user.email=team@example.invalid"]


def _git(root: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True)


def test_uncommitted_lists_changed_staged_untracked_and_odd_names_relative_to_the_project(tmp_path):
    """The project may be a folder of a larger repository: paths come back relative to it."""
    from piperack.merge import uncommitted

    repo, project = tmp_path / "repo", tmp_path / "repo" / "proj"
    for rel in ("a.py", "b.py", "c *.py", "clean.py"):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text("x\n")
    assert uncommitted(project, ["a.py"]) is None  # not a git work tree
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    (project / "a.py").write_text("edited\n")
    (project / "b.py").write_text("staged\n")
    _git(repo, "add", "proj/b.py")
    (project / "c *.py").write_text("odd name\n")
    (project / "new.py").write_text("untracked\n")
    index = (repo / ".git/index").read_bytes()
    everything = ["a.py", "b.py", "c *.py", "clean.py", "new.py", "gone.py"]
    assert uncommitted(project, everything) == ["a.py", "b.py", "c *.py", "new.py"]
    assert uncommitted(project, ["c *.py"]) == ["c *.py"]  # a literal name, not a pattern
    assert uncommitted(project, ["clean.py"]) == [] and uncommitted(project, []) == []
    assert (repo / ".git/index").read_bytes() == index  # asking writes nothing, not even git's index


def test_upgrade_refuses_uncommitted_edits_it_would_merge(mini, tmp_path, capsys, tree_hash):
    v = _versions(tmp_path, ("0.1.0", "first"), ("0.2.0", "second"))
    engine.pull(PullOptions(source=str(v["0.1.0"]), alias="common"), project=find_project(mini))
    _git(mini, "init", "-q")
    _git(mini, "add", "-A")
    _git(mini, "commit", "-qm", "pulled")
    helpers = mini / "src/demo/pipelines/common/helpers.py"
    helpers.write_text(helpers.read_text().replace("LIMIT = 10", "LIMIT = 99"))
    (mini / "src/demo/pipelines/common/pipeline.py").write_text("# edited, but 0.2.0 leaves it alone\n")
    upgrade = PullOptions(source="common", upgrade=True, to=str(v["0.2.0"]))
    before = tree_hash(mini)
    capsys.readouterr()
    with pytest.raises(PiperackError) as caught:
        engine.pull(upgrade, project=find_project(mini))
    assert str(caught.value) == (
        "uncommitted changes in 1 file(s) the upgrade would merge: src/demo/pipelines/common/helpers.py "
        "(commit or stash them, or pass --allow-dirty)"
    )
    assert tree_hash(mini) == before
    # Committed, the same edit merges.
    _git(mini, "commit", "-qam", "ours")
    engine.pull(upgrade, project=find_project(mini))
    assert helpers.read_text() == "def double(x):\n    # second\n    return 2 * x\n\n\nLIMIT = 99\n"
    assert "warning" not in capsys.readouterr().err


def test_upgrade_outside_git_warns_that_it_cannot_check(mini, tmp_path, capsys):
    v = _versions(tmp_path, ("0.1.0", "first"), ("0.2.0", "second"))
    engine.pull(PullOptions(source=str(v["0.1.0"]), alias="common"), project=find_project(mini))
    helpers = mini / "src/demo/pipelines/common/helpers.py"
    helpers.write_text(helpers.read_text().replace("LIMIT = 10", "LIMIT = 99"))
    capsys.readouterr()
    engine.pull(PullOptions(source="common", upgrade=True, to=str(v["0.2.0"])), project=find_project(mini))
    assert capsys.readouterr().err == (
        "warning: not a git work tree: cannot check for uncommitted changes (commit before upgrading)\n"
    )
    assert helpers.read_text().endswith("LIMIT = 99\n")
