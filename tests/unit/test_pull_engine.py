"""Unit tests of piperack.pull, in-process on a minimal project folder (no bake, no venv).

Covers option validation, reading sdists (piperack and Kedro layouts), parameter paths, the
conflict rules, the record, and the transaction: an error or Ctrl-C at any write rolls back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import pytest

from piperack import fsutil
from piperack import pull as engine
from piperack.errors import PiperackError
from piperack.options import PullOptions, normalise_destination
from piperack.project import find_project
from piperack.pull.plan import _param_target
from tests.pull_support import write_sdist
from tests.unit.conftest import PYPROJECT


def exact(message: str) -> str:
    """A ``match=`` pattern for exactly this one-line message."""
    return f"^{re.escape(message)}$"


def run(root: Path, source, **kwargs):
    return engine.pull(PullOptions(source=str(source), **kwargs), project=find_project(root))


def test_pull_places_code_params_tests_and_records(mini, tmp_path, capsys):
    sdist = write_sdist(tmp_path / "dist", "cleaner", "0.3.0", requires=["pandas>=2.1", "scipy>=1.10"])
    run(mini, sdist)
    assert (
        (mini / "src/demo/pipelines/cleaner/nodes.py")
        .read_text()
        .startswith('"""Nodes of cleaner."""\nfrom demo.pipelines.cleaner.helpers import double')
    )
    assert (mini / "src/demo/pipelines/cleaner/pipeline.py").read_text().startswith("from .nodes import run_nodes")
    assert "# a comment that must survive" in (mini / "src/demo/pipelines/cleaner/helpers.py").read_text()
    test = (mini / "src/tests/pipelines/cleaner/test_cleaner.py").read_text()
    assert 'mock.patch("demo.pipelines.cleaner.nodes.double"' in test
    assert "import demo.pipelines.cleaner.nodes\n" in test
    assert (mini / "conf/base/parameters/cleaner.yml").read_text() == "factor: 3\n"
    assert (mini / "requirements.in").read_text() == "pandas>=2.1\nscipy>=1.10\n"
    pyproject = (mini / "pyproject.toml").read_text()
    assert pyproject.startswith(PYPROJECT)  # formatting and comments kept
    assert '"pipelines.cleaner" = {source = ' in pyproject and 'version = "0.3.0"' in pyproject
    out = capsys.readouterr().out
    assert "invoke build-reqs" in out and "src/demo/pipelines/cleaner/" in out


def test_alias_destination_env(mini, tmp_path):
    sdist = write_sdist(
        tmp_path / "dist",
        "cleaner",
        "0.3.0",
        params={
            "parameters/cleaner.yml": "a: 1\n",
            "parameters/cleaner_extra.yml": "b: 2\n",
            "parameters/cleaner/deep.yml": "c: 3\n",
        },
    )
    run(mini, sdist, alias="tidy", destination="shared/tools", env="prod")
    assert (mini / "src/demo/shared/__init__.py").read_text() == ""
    assert (mini / "src/demo/shared/tools/__init__.py").exists()
    assert (
        "from demo.shared.tools.tidy.helpers import double"
        in (mini / "src/demo/shared/tools/tidy/nodes.py").read_text()
    )
    assert (
        'mock.patch("demo.shared.tools.tidy.nodes.double"'
        in (mini / "src/tests/shared/tools/tidy/test_cleaner.py").read_text()
    )
    for rel in ("tidy.yml", "tidy/deep.yml"):
        assert (mini / "conf/prod/parameters" / rel).is_file(), rel
    assert not (mini / "conf/prod/parameters/tidy_extra.yml").exists()  # another pipeline's name: never pulled
    assert '"shared.tools.tidy"' in (mini / "pyproject.toml").read_text()


def test_recorded_module_is_the_default_destination(mini, tmp_path):
    run(mini, write_sdist(tmp_path / "d", "cleaning", module="utils.cleaning"))
    assert (mini / "src/demo/utils/cleaning/nodes.py").is_file()
    assert (mini / "src/tests/utils/cleaning/test_cleaning.py").is_file()


def test_kedro_parameters_file_name(mini, tmp_path):
    sdist = write_sdist(
        tmp_path / "d",
        "ingest",
        params={"parameters_ingest.yml": "k: 1\n"},
        extra={"ingest.egg-info/PKG-INFO": "Name: ingest\n", "setup.cfg": "[egg_info]\n"},
    )
    run(mini, sdist, alias="ing")
    assert (mini / "conf/base/parameters/ing.yml").read_text() == "k: 1\n"


def test_kedro_both_parameter_layouts_colliding_keys_are_refused_by_name(mini, tmp_path, tree_hash):
    sdist = write_sdist(
        tmp_path / "d",
        "ingest",
        params={"parameters_ingest.yml": "a: 1\nb: 1\n", "parameters/ingest.yml": "a: 2\nc: 3\n"},
    )
    before = tree_hash(mini)
    with pytest.raises(
        PiperackError,
        match=exact(
            f"{sdist}: parameters/ingest.yml and parameters_ingest.yml both set a for "
            "conf/base/parameters/ingest.yml; refused (merge them in the package)"
        ),
    ):
        run(mini, sdist)
    assert tree_hash(mini) == before


def test_kedro_both_parameter_layouts_with_different_keys_land_merged(mini, tmp_path):
    import yaml

    sdist = write_sdist(
        tmp_path / "d",
        "ingest",
        params={"parameters_ingest.yml": "# old layout\na: 1\n", "parameters/ingest.yml": "b:\n  c: 2\n"},
    )
    run(mini, sdist, alias="feed")
    text = (mini / "conf/base/parameters/feed.yml").read_text()
    assert yaml.safe_load(text) == {"a": 1, "b": {"c": 2}}
    assert "# old layout" in text  # comments kept: the two files are joined, not re-dumped


@pytest.mark.parametrize(
    "rel, alias, expected",
    [
        ("parameters/ingest.yml", None, "parameters/ingest.yml"),
        ("parameters_ingest.yml", None, "parameters/ingest.yml"),
        ("parameters_ingest.yml", "x", "parameters/x.yml"),
        ("parameters/ingest_more.yml", "x", "None"),  # another pipeline's file: exact names only
        ("parameters/ingestion.yml", None, "None"),
        ("catalog/ingest.yml", None, "None"),
        ("credentials.yml", None, "None"),
        ("parameters_ingestion.yml", None, "None"),
        ("parameters/ingest.yaml", "x", "parameters/x.yaml"),
        ("parameters/ingest/a/b.yml", "x", "parameters/x/a/b.yml"),
    ],
)
def test_param_target(rel, alias, expected):
    assert str(_param_target(PurePosixPath(rel), "ingest", alias or "ingest")) == expected


@pytest.mark.parametrize(
    "value, expected", [("pipelines", "pipelines"), ("a.b", "a.b"), ("a/b", "a.b"), ("a/b/", "a.b")]
)
def test_destination_forms(value, expected):
    assert normalise_destination(value) == expected


INSIDE = "expected a module path such as 'pipelines' inside the project package"
DOTTED = "expected a dotted Python module path such as 'pipelines.ingest'"


@pytest.mark.parametrize(
    "value, reason",
    [
        ("../x", INSIDE),
        ("/abs", INSIDE),
        ("a/../b", INSIDE),
        ("a..b", DOTTED),
        ("1x", DOTTED),
        ("a.class", "every part must be a Python identifier"),
        ("", DOTTED),
        ("a b", DOTTED),
    ],
)
def test_bad_destinations(value, reason):
    with pytest.raises(PiperackError, match=exact(f"invalid --destination {value!r}: {reason}")):
        normalise_destination(value)


ALIAS = "it must be a Python identifier such as 'my_pipeline'"
ENV = "an env is a folder name directly under conf/ (letters, digits, '_', '-', '.')"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"alias": "a.b"}, f"invalid alias 'a.b': {ALIAS}"),
        ({"alias": "class"}, f"invalid alias 'class': it is a Python keyword; {ALIAS}"),
        ({"alias": "../x"}, f"invalid alias '../x': {ALIAS}"),
        ({"env": "../../x"}, f"invalid env '../../x': {ENV}"),
        ({"env": "/etc"}, f"invalid env '/etc': {ENV}"),
        ({"destination": "../../etc"}, f"invalid destination '../../etc': {INSIDE}"),
        ({"sha256": "abc"}, "invalid sha256 'abc': expected 64 hexadecimal digits"),
    ],
)
def test_options_are_validated_before_anything(mini, tmp_path, tree_hash, options, message):
    sdist = write_sdist(tmp_path / "d", "cleaner")
    before = tree_hash(mini)
    with pytest.raises(PiperackError, match=exact(message)):
        run(mini, sdist, **options)
    assert tree_hash(mini) == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"code": {"nodes.py": "x = 1\n"}},
            "no package in cleaner-0.1.0/ (expected a folder with an __init__.py besides tests/)",
        ),
        (
            {"extra": {"second/__init__.py": ""}},
            "more than one package in cleaner-0.1.0/: cleaner, second (expected exactly one)",
        ),
    ],
)
def test_bad_layouts(mini, tmp_path, tree_hash, kwargs, message):
    sdist = write_sdist(tmp_path / "d", "cleaner", **kwargs)
    before = tree_hash(mini)
    with pytest.raises(PiperackError, match=exact(f"{sdist}: {message}")):
        run(mini, sdist)
    assert tree_hash(mini) == before


def test_no_metadata(mini, tmp_path, tree_hash):
    import io
    import tarfile

    path = tmp_path / "bare-0.1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("bare-0.1/bare/__init__.py")
        tar.addfile(info, io.BytesIO(b""))
    before = tree_hash(mini)
    with pytest.raises(
        PiperackError,
        match=exact(f"{path}: no PKG-INFO or pyproject.toml [project] in bare-0.1/: not a micro-package sdist"),
    ):
        run(mini, path)
    assert tree_hash(mini) == before


def test_conflicts_list_everything_and_force_replaces(mini, tmp_path, tree_hash):
    v1 = write_sdist(tmp_path / "d", "cleaner", "0.1.0", code={"__init__.py": "", "old_only.py": "x = 1\n"})
    v2 = write_sdist(tmp_path / "d", "cleaner", "0.2.0")
    run(mini, v1)
    before = tree_hash(mini)
    conflicts = "; ".join(
        f"{rel} already exists (from {v2})"
        for rel in ("conf/base/parameters/cleaner.yml", "src/demo/pipelines/cleaner/", "src/tests/pipelines/cleaner/")
    )
    with pytest.raises(
        PiperackError,
        match=exact(f"nothing pulled: 3 conflict(s): {conflicts} (use --force to replace the old module)"),
    ):
        run(mini, v2)
    assert tree_hash(mini) == before
    run(mini, v2, force=True)
    assert not (mini / "src/demo/pipelines/cleaner/old_only.py").exists()  # replaced wholly, not mixed
    assert (mini / "src/demo/pipelines/cleaner/nodes.py").exists()
    assert 'version = "0.2.0"' in (mini / "pyproject.toml").read_text()
    assert not list(mini.glob(".piperack-backup-*"))


def test_dry_run_writes_nothing_and_lists_every_file(mini, tmp_path, tree_hash, capsys):
    sdist = write_sdist(tmp_path / "d", "cleaner", requires=["scipy"])
    before = tree_hash(mini)
    run(mini, sdist, dry_run=True)
    assert tree_hash(mini) == before
    out = capsys.readouterr().out
    for rel in (
        "src/demo/pipelines/cleaner/nodes.py",
        "src/tests/pipelines/cleaner/test_cleaner.py",
        "conf/base/parameters/cleaner.yml",
        "requirements.in",
        "pyproject.toml",
    ):
        assert rel in out


def test_sha256_option(mini, tmp_path, tree_hash):
    sdist = write_sdist(tmp_path / "d", "cleaner")
    before = tree_hash(mini)
    import hashlib

    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    with pytest.raises(PiperackError, match=exact(f"{sdist}: sha256 is {digest}, expected {'0' * 64}; refused")):
        run(mini, sdist, sha256="0" * 64)
    assert tree_hash(mini) == before
    run(mini, sdist, sha256=digest.upper())
    assert (mini / "src/demo/pipelines/cleaner").is_dir()


def test_conflicting_requirement_refused_naming_both_lines_unless_allowed(mini, tmp_path, capsys, tree_hash):
    (mini / "requirements.in").unlink()
    sdist = write_sdist(tmp_path / "d", "cleaner", requires=["pandas<2", "Scipy_Stats>=1"])
    before = tree_hash(mini)
    with pytest.raises(
        PiperackError,
        match=exact(
            "nothing pulled: no version satisfies both pandas<2 (the package) vs pandas==2.2.0 (requirements.in); "
            "pass --allow-conflicts to add it anyway (then `invoke build-reqs` will say what to do)"
        ),
    ):
        run(mini, sdist)
    assert tree_hash(mini) == before
    run(mini, sdist, allow_conflicts=True)
    text = (mini / "requirements.in").read_text()
    assert "pandas==2.2.0" in text and "Scipy_Stats>=1" in text and text.endswith("pandas<2\n")
    err = capsys.readouterr().err
    assert "'pandas<2'" in err and "'pandas==2.2.0'" in err and "added anyway" in err


def test_duplicate_requirement_skipped_after_normalisation(mini, tmp_path):
    (mini / "requirements.in").write_text("Scikit_Learn>=1.0\n")
    run(mini, write_sdist(tmp_path / "d", "cleaner", requires=["scikit-learn>=1.0"]))
    assert (mini / "requirements.in").read_text() == "Scikit_Learn>=1.0\n"


def test_all_from_manifest_is_one_transaction(mini, tmp_path, tree_hash):
    a = write_sdist(tmp_path / "d", "alpha")
    b = write_sdist(tmp_path / "d", "beta")
    (mini / "pyproject.toml").write_text(
        PYPROJECT + f'"{a}" = {{alias = "alpha2", destination = "pipelines"}}\n"{b}" = {{env = "base"}}\n'
        f'"{a.name}" = {{fs-args = "nope.yml"}}\n'
    )
    before = tree_hash(mini)
    with pytest.raises(PiperackError, match=exact("fs-args file nope.yml: no such file")):
        engine.pull(PullOptions(all_=True), project=find_project(mini))
    assert tree_hash(mini) == before  # the first two entries were planned, nothing written
    text = (mini / "pyproject.toml").read_text().replace(f'"{a.name}" = {{fs-args = "nope.yml"}}\n', "")
    (mini / "pyproject.toml").write_text(text)
    engine.pull(PullOptions(all_=True), project=find_project(mini))
    assert (mini / "src/demo/pipelines/alpha2/nodes.py").is_file()
    assert (mini / "src/demo/pipelines/beta/nodes.py").is_file()


def test_all_refuses_clashing_entries(mini, tmp_path, tree_hash):
    a = write_sdist(tmp_path / "d", "alpha")
    b = write_sdist(tmp_path / "e", "alpha", "0.2.0")
    (mini / "pyproject.toml").write_text(PYPROJECT + f'"{a}" = {{}}\n"{b}" = {{}}\n')
    before = tree_hash(mini)
    clashes = "; ".join(
        f'{rel} would be written by both [tool.piperack.pull] "{a}" and [tool.piperack.pull] "{b}"'
        for rel in (
            "src/demo/pipelines/alpha/helpers.py",
            "src/demo/pipelines/alpha/nodes.py",
            "src/demo/pipelines/alpha/pipeline.py",
            "src/demo/pipelines/alpha/requirements.txt",
            "conf/base/parameters/alpha.yml",
            "src/tests/pipelines/alpha/test_alpha.py",
        )
    )
    with pytest.raises(
        PiperackError,
        match=exact(f"nothing pulled: 6 conflict(s): {clashes} (use --force to replace the old module)"),
    ):
        engine.pull(PullOptions(all_=True), project=find_project(mini))
    assert tree_hash(mini) == before


# The apply's file operations, in order: 3 removals (a rename each), 7 new files (an open each), 2
# changed files (an open of the temporary file and a rename each): 14 points a failure can strike.
@pytest.mark.parametrize("fail_at", [1, 3, 4, 8, 10, 11, 12, 14])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError, "SIGTERM"])
def test_interrupted_apply_rolls_back(mini, tmp_path, tree_hash, monkeypatch, fail_at, exc):
    v1 = write_sdist(tmp_path / "d", "cleaner", "0.1.0")
    v2 = write_sdist(
        tmp_path / "d",
        "cleaner",
        "0.2.0",
        requires=["scipy"],
        code={"__init__.py": "", "a.py": "", "b.py": "", "c.py": ""},
    )
    run(mini, v1)
    before = tree_hash(mini)
    real_replace, real_open = os.replace, os.open
    calls = {"n": 0}

    def strike() -> None:
        calls["n"] += 1
        if calls["n"] == fail_at:
            if exc == "SIGTERM":
                import signal

                # What the process does when SIGTERM arrives now: call the handler the pull installed
                # (it turns the signal into KeyboardInterrupt). No signal is sent to pytest itself.
                handler = signal.getsignal(signal.SIGTERM)
                assert callable(handler), "the pull installed no SIGTERM handler"
                handler(signal.SIGTERM, None)
            else:
                raise exc("simulated failure")

    def flaky_replace(src, dst):
        strike()
        return real_replace(src, dst)

    def flaky_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(mini)) and flags & os.O_CREAT:
            strike()
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(fsutil.os, "replace", flaky_replace)
    monkeypatch.setattr(fsutil.os, "open", flaky_open)
    with pytest.raises(KeyboardInterrupt if exc == "SIGTERM" else exc):
        run(mini, v2, force=True)
    monkeypatch.setattr(fsutil.os, "replace", real_replace)
    monkeypatch.setattr(fsutil.os, "open", real_open)
    assert calls["n"] >= fail_at
    assert tree_hash(mini) == before
    assert not list(mini.glob(".piperack-backup-*"))


def test_a_pull_killed_midway_is_undone_by_the_next_run(mini, tmp_path, capsys, tree_hash):
    """SIGKILL leaves no chance to roll back: the journal lets the next pull put everything back."""
    before = tree_hash(mini)
    tx = fsutil.Transaction(mini)
    tx.create("src/demo/pipelines/half/__init__.py", b"")
    tx.change("pyproject.toml", (mini / "pyproject.toml").read_bytes() + b"\n[tool.piperack.pulled]\nhalf = {}\n")
    tx.remove("requirements.in")
    tx._journal.close()  # the process dies here: no commit, no rollback
    assert tree_hash(mini) != before
    run(mini, write_sdist(tmp_path / "d", "cleaner"), dry_run=True)
    err = capsys.readouterr().err
    assert "an earlier run was killed midway; put back" in err and "pyproject.toml" in err
    assert tree_hash(mini) == before


def test_a_file_that_appears_midway_is_refused_and_never_removed(mini, monkeypatch):
    """create() writes in place with O_EXCL: a file someone else made after the check (a race) is
    neither overwritten nor removed by the rollback, nor by recover() after a kill."""
    other = mini / "src" / "demo" / "theirs.py"
    other.write_text("# not piperack's\n")
    real_lstat = os.lstat

    def not_there_yet(path, *args, **kwargs):  # the check runs before the file appears
        if str(path).endswith("theirs.py"):
            raise FileNotFoundError(path)
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(fsutil.os, "lstat", not_there_yet)
    tx = fsutil.Transaction(mini)
    appeared = exact("src/demo/theirs.py appeared while writing; nothing changed")
    with pytest.raises(PiperackError, match=appeared):
        tx.create("src/demo/theirs.py", b"x = 1\n")
    tx._journal.close()  # killed here: the journal says create, then cancel
    monkeypatch.undo()
    assert fsutil.recover(mini)
    assert other.read_text() == "# not piperack's\n"
    tx2 = fsutil.Transaction(mini)
    monkeypatch.setattr(fsutil.os, "lstat", not_there_yet)
    with pytest.raises(PiperackError, match=appeared):
        tx2.create("src/demo/theirs.py", b"x = 1\n")
    monkeypatch.undo()
    tx2.rollback()
    assert other.read_text() == "# not piperack's\n"


def _many(mini, tmp_path, count: int, bad: int | None = None) -> None:
    entries = ""
    for i in range(count):
        sdist = write_sdist(tmp_path / "many", f"pkg{i:02d}", requires=[f"dep{i}>=1"])
        if i == bad:
            sdist.write_bytes(b"not an archive")
        entries += f'"{sdist}" = {{}}\n'
    (mini / "pyproject.toml").write_text(PYPROJECT + entries)


def test_many_packages_plan_on_two_processes_with_the_same_result(mini, tmp_path, tree_hash, monkeypatch):
    """From workers.MIN_ITEMS packages on, a forked process plans the second half: the project ends
    byte for byte as when one process plans them all (PIPERACK_WORKERS=1)."""
    import shutil

    from piperack.workers import ENV_WORKERS, MIN_ITEMS

    count = MIN_ITEMS + 4
    _many(mini, tmp_path, count)
    twin = tmp_path / "twin"
    shutil.copytree(mini, twin)
    monkeypatch.setenv(ENV_WORKERS, "1")
    engine.pull(PullOptions(all_=True), project=find_project(twin))
    monkeypatch.delenv(ENV_WORKERS)
    forks, real_fork = [], os.fork

    def counted_fork():
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counted_fork)
    plan = engine.pull(PullOptions(all_=True), project=find_project(mini))
    assert forks == [1]  # the second half was planned by a forked process
    assert [p.module for p in plan.placements] == [f"pipelines.pkg{i:02d}" for i in range(count)]
    assert f"pipelines.pkg{count - 1:02d}" in (mini / "pyproject.toml").read_text()
    assert f"dep{count - 1}>=1" in (mini / "requirements.in").read_text()
    assert tree_hash(mini) == tree_hash(twin)


@pytest.mark.parametrize("bad", [1, 10])  # in the half this process plans, then in the forked one's
def test_a_refused_package_among_many_is_one_error_and_nothing_changes(mini, tmp_path, tree_hash, bad):
    from piperack.workers import MIN_ITEMS

    _many(mini, tmp_path, MIN_ITEMS + 4, bad=bad)
    before = tree_hash(mini)
    sdist = tmp_path / "many" / f"pkg{bad:02d}-0.1.0.tar.gz"
    with pytest.raises(
        PiperackError,
        match=exact(
            f'[tool.piperack.pull] "{sdist}": {sdist}: not a readable .tar.gz archive '
            "(file could not be opened successfully:)"
        ),
    ):
        engine.pull(PullOptions(all_=True), project=find_project(mini))
    assert tree_hash(mini) == before


def test_files_where_folders_are_needed_are_each_one_conflict(mini, tmp_path, tree_hash):
    """A file standing where the pull needs a folder is refused once, however many pulled files go
    below it, on the code, tests and parameters sides alike."""
    sdist = write_sdist(tmp_path / "dist", "cleaner", "0.3.0")
    for rel in ("src/demo/shared", "src/tests/shared", "conf/prod"):
        (mini / rel).write_text("in the way\n")
    before = tree_hash(mini)
    conflicts = "; ".join(
        f"{rel} (a file where a folder is needed) already exists (from {sdist})"
        for rel in ("conf/prod", "src/demo/shared", "src/tests/shared")
    )
    with pytest.raises(
        PiperackError,
        match=exact(f"nothing pulled: 3 conflict(s): {conflicts} (use --force to replace the old module)"),
    ):
        run(mini, sdist, destination="shared/tools", env="prod")
    assert tree_hash(mini) == before
