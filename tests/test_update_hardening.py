"""`invoke update-project` against hostile templates, hostile records and faults (issue 20, kinds 1-4),
as a team meets them: a project baked with piperack A and committed, piperack B installed, the old
template given with --from. Every refusal is one line, exit 1, the project byte-for-byte as before."""
# ruff: noqa: F811 - the fixtures of the update story (tests/test_update.py) are imported by name

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from scripts import kitlib
from tests.pull_support import wait_until
from tests.test_update import (  # noqa: F401 - fixtures used by name
    CONFLICT_IN_README,
    A,
    B,
    git,
    invoke_b,
    kit_b,
    team_project,
    venv_b,
    wheelhouse_b,
)
from tests.unit.test_archive import forge
from tests.unit.test_update_engine import EVIL_EXTENSION, EVIL_HOOK

TEMPLATE = "{{cookiecutter.repo_name}}"


def a_wheel(wheelhouse: Path) -> Path:
    return next(wheelhouse.glob(f"piperack-{A}-*.whl"))


def backups(root: Path) -> list[Path]:
    return sorted(root.glob(".piperack-backup-*"))


def without_git(tree: dict) -> dict:
    return {k: v for k, v in tree.items() if not k.startswith(".git/")}


# -- kind 1: no template code runs ---------------------------------------------------------------------


@pytest.fixture
def evil_kit(kit_repo, tmp_path) -> tuple[Path, Path]:
    """Kit A whose hooks and local_extensions.py would write a marker file and exit, if run."""
    kit = tmp_path / "evil-kit"
    shutil.copytree(kit_repo, kit, ignore=shutil.ignore_patterns(".git"))
    marker = tmp_path / "marker"
    for hook in ("pre_gen_project.py", "post_gen_project.py"):
        (kit / "hooks" / hook).write_text(EVIL_HOOK.format(marker=str(marker)))
    (kit / "local_extensions.py").write_text(
        (kit / "local_extensions.py").read_text() + "\n" + EVIL_EXTENSION.format(marker=str(marker))
    )
    questions = json.loads((kit / "cookiecutter.json").read_text())
    questions["_extensions"] = [*questions["_extensions"], "local_extensions.Evil"]
    (kit / "cookiecutter.json").write_text(json.dumps(questions))
    return kit, marker


def as_wheel(kit: Path, out: Path) -> Path:
    wheel = out / f"piperack-{A}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(kit.rglob("*")):
            if path.is_file():
                archive.write(path, "piperack/template/" + path.relative_to(kit).as_posix())
    return wheel


def as_sdist(kit: Path, out: Path) -> Path:
    sdist = out / f"piperack-{A}.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        archive.add(kit, f"piperack-{A}")
    return sdist


@pytest.mark.parametrize("form", ["folder", "wheel", "sdist"])
def test_no_hook_or_local_extension_of_the_old_template_runs(team_project, venv_b, evil_kit, tmp_path, form, tree_hash):
    kit, marker = evil_kit
    source = {"folder": lambda: kit, "wheel": lambda: as_wheel(kit, tmp_path), "sdist": lambda: as_sdist(kit, tmp_path)}
    source = source[form]()
    before = tree_hash(team_project)
    dry = invoke_b(venv_b, team_project, "update-project", "--dry-run", "--from", str(source))
    assert dry.returncode == 0, dry.stderr
    assert "  conflict  README.md  (1 conflict(s) marked inline)" in dry.stdout
    assert not marker.exists() and tree_hash(team_project) == before
    updated = invoke_b(venv_b, team_project, "update-project", "--from", str(source))
    assert (updated.returncode, updated.stderr) == (1, CONFLICT_IN_README)
    assert not marker.exists()
    assert json.loads((team_project / ".piperack.json").read_text())["piperack_version"] == B


def test_an_old_template_holding_the_projects_git_files_never_deletes_them(team_project, venv_b, kit_repo, tmp_path):
    kit = tmp_path / "kit-git"
    shutil.copytree(kit_repo, kit, ignore=shutil.ignore_patterns(".git"))
    config = (team_project / ".git" / "config").read_bytes()
    (kit / TEMPLATE / ".git").mkdir()
    (kit / TEMPLATE / ".git" / "config").write_bytes(config)  # "dropped by the new template"
    updated = invoke_b(venv_b, team_project, "update-project", "--from", str(kit))
    assert (updated.returncode, updated.stderr) == (1, CONFLICT_IN_README)
    assert (team_project / ".git" / "config").read_bytes() == config
    assert ".git/" not in updated.stdout


# -- kind 2: --from meets pull's archive rules ---------------------------------------------------------


def _zip_with(path: Path, wheel: Path, extra: dict[str, bytes | None]) -> Path:
    """A copy of ``wheel`` plus ``extra`` members (None: a symbolic link to /etc/passwd)."""
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        for name, data in extra.items():
            info = zipfile.ZipInfo(name)
            if data is None:
                info.external_attr = 0o120777 << 16
                data = b"/etc/passwd"
            out.writestr(info, data)
    return path


def _forged(path: Path, wheel: Path, field: str) -> Path:
    """``wheel`` with one more member whose CRC or declared size lies."""
    import zlib

    data = b"forged member " * 4000
    name = f"piperack/template/{TEMPLATE}/forged.txt"
    _zip_with(path, wheel, {name: data})
    forge(path, name, **({"crc": zlib.crc32(data) ^ 1} if field == "crc" else {"size": 11}))
    return path


def _tar_with(path: Path, names: list[tuple[str, bytes, str]]) -> Path:
    import io

    with tarfile.open(path, "w:gz") as archive:
        for name, data, link in names:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def _folder_with_link(tmp_path: Path, kit_repo: Path, rel: str, target: str) -> Path:
    kit = tmp_path / "kit-link"
    shutil.copytree(kit_repo, kit, ignore=shutil.ignore_patterns(".git"))
    (kit / rel).symlink_to(target)
    return kit


HOSTILE = {
    "crc": (
        lambda t, w, k: _forged(t / "crc.whl", w, "crc"),
        f"refused member 'piperack/template/{TEMPLATE}/forged.txt': its data fails its CRC check",
    ),
    "inflates": (
        lambda t, w, k: _forged(t / "bomb.whl", w, "size"),
        f"refused member 'piperack/template/{TEMPLATE}/forged.txt': it inflates past its declared size",
    ),
    "file-and-folder": (
        lambda t, w, k: _zip_with(
            t / "clash.whl", w, {"piperack/template/hooks/x": b"1", "piperack/template/hooks": b"2"}
        ),
        "refused member 'piperack/template/hooks': it is both a file and a folder",
    ),
    "zip-link": (
        lambda t, w, k: _zip_with(t / "link.whl", w, {f"piperack/template/{TEMPLATE}/leak": None}),
        f"refused member 'piperack/template/{TEMPLATE}/leak': a symbolic link",
    ),
    "zip-dotdot": (
        lambda t, w, k: _zip_with(t / "dots.whl", w, {"../../evil.py": b"x"}),
        "refused member '../../evil.py': a path that climbs out with '..'",
    ),
    "tar-absolute": (
        lambda t, w, k: _tar_with(
            t / "abs.tar.gz", [(f"piperack-{A}/cookiecutter.json", b"{}", ""), ("/tmp/evil", b"x", "")]
        ),
        "refused member '/tmp/evil': an absolute path",
    ),
    "tar-link": (
        lambda t, w, k: _tar_with(t / "ln.tar.gz", [(f"piperack-{A}/cookiecutter.json", b"{}", "/etc/passwd")]),
        f"refused member 'piperack-{A}/cookiecutter.json': a symbolic link (to '/etc/passwd')",
    ),
    "folder-link-outside": (
        lambda t, w, k: _folder_with_link(t, k, f"{TEMPLATE}/leak.txt", "/etc/passwd"),
        f"refused member '{TEMPLATE}/leak.txt': a symbolic link (to '/etc/passwd')",
    ),
    "folder-link-inside": (
        lambda t, w, k: _folder_with_link(t, k, "hooks/again", "../hooks"),
        "refused member 'hooks/again': a symbolic link (to '../hooks')",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_from_source_is_one_line_and_nothing_written(
    team_project, venv_b, wheelhouse, kit_repo, tmp_path, tree_hash, case
):
    make, reason = HOSTILE[case]
    source = make(tmp_path, a_wheel(wheelhouse), kit_repo)
    before = tree_hash(team_project)
    for extra in (["--dry-run"], []):
        result = invoke_b(venv_b, team_project, "update-project", *extra, "--from", str(source))
        assert (result.returncode, result.stderr) == (1, f"error: --from {source}: {reason}\n"), result.stderr
        assert tree_hash(team_project) == before


# -- kind 3: faults --------------------------------------------------------------------------------------


@pytest.fixture
def updated_tree(team_project, venv_b, wheelhouse, tmp_path, tree_hash) -> dict:
    """What a clean update of a copy of the team's project gives (the reference)."""
    copy = tmp_path / "reference" / team_project.name
    shutil.copytree(team_project, copy, symlinks=True)
    done = invoke_b(venv_b, copy, "update-project", "--from", str(a_wheel(wheelhouse)))
    assert (done.returncode, done.stderr) == (1, CONFLICT_IN_README)
    return without_git(tree_hash(copy))


@pytest.mark.parametrize("point", ["1", "4", "9", "commit", "committed"])
def test_sigkill_at_any_point_then_a_rerun_ends_fully_updated(
    team_project, venv_b, wheelhouse, updated_tree, tree_hash, point
):
    root = team_project
    wheel = str(a_wheel(wheelhouse))
    before = without_git(tree_hash(root))
    killed = invoke_b(venv_b, root, "update-project", "--from", wheel, PIPERACK_TEST_FAULT=f"{point}:KILL")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    checked = invoke_b(venv_b, root, "update-project", "--check")
    if point == "committed":  # every write landed before the kill: it is updated
        assert checked.returncode == 0, checked.stderr
    else:  # never "up to date" on a half-updated tree
        assert checked.returncode == 1
        assert checked.stderr == (
            "error: an earlier `invoke update-project` was killed midway: run invoke update-project again "
            "(it puts the project back first)\n"
        )
    rerun = invoke_b(venv_b, root, "update-project", *([] if point == "committed" else ["--from", wheel]))
    if point == "committed":
        assert (rerun.returncode, rerun.stderr) == (0, "")
        assert f"already at piperack {B}: nothing to update" in rerun.stdout
    else:
        assert (rerun.returncode, rerun.stderr.splitlines()[-1] + "\n") == (1, CONFLICT_IN_README)
        assert rerun.stderr.startswith("warning: an earlier run was killed midway; put back")
    assert without_git(tree_hash(root)) == updated_tree != before
    assert backups(root) == []


@pytest.mark.parametrize("sig, code, line", [("TERM", 143, "terminated"), ("INT", 130, "interrupted")])
def test_sigterm_and_ctrl_c_while_writing_put_everything_back(
    team_project, venv_b, wheelhouse, tree_hash, sig, code, line
):
    before = tree_hash(team_project)
    stopped = invoke_b(
        venv_b, team_project, "update-project", "--from", str(a_wheel(wheelhouse)), PIPERACK_TEST_FAULT=f"4:{sig}"
    )
    assert stopped.returncode == code
    assert len(stopped.stderr.splitlines()) == 1 and stopped.stderr.startswith(f"{line}: "), stopped.stderr
    assert tree_hash(team_project) == before and backups(team_project) == []


def test_an_update_during_an_update_waits_and_leaves_its_journal_alone(team_project, venv_b, wheelhouse, tree_hash):
    """The first update stops (SIGSTOP) with its journal half-written; the second waits for the
    lock, then finds the project updated and its journal gone."""
    wheel = str(a_wheel(wheelhouse))
    env = kitlib.invoke_env(venv_b) | {"PIPERACK_TEST_FAULT": "4:STOP"}
    first = subprocess.Popen(
        [str(venv_b / "bin" / "invoke"), "update-project", "--from", wheel],
        cwd=team_project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: _state(first.pid) == "T", "the first update stops midway", proc=first)
        journal = backups(team_project)[0] / "journal.jsonl"
        held = journal.read_bytes()
        env.pop("PIPERACK_TEST_FAULT")
        second = subprocess.Popen(  # no --from: it reads the record once the first is done
            [str(venv_b / "bin" / "invoke"), "update-project"],
            cwd=team_project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert second.stderr.readline() == (
            "warning: another piperack command is writing to this project; this update-project waits for it to finish\n"
        )
        assert journal.read_bytes() == held  # the waiting update touched nothing
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert (first.returncode, err) == (1, CONFLICT_IN_README)
    out, err = second.communicate(timeout=300)
    assert (second.returncode, err) == (0, "")
    assert f"already at piperack {B}: nothing to update" in out
    assert backups(team_project) == []


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


# -- kind 4: inputs ----------------------------------------------------------------------------------------


def test_a_linked_nested_or_oversized_record_is_one_line_naming_it(
    team_project, venv_b, wheelhouse, tmp_path, tree_hash
):
    record = team_project / ".piperack.json"
    elsewhere = tmp_path / "record.json"
    elsewhere.write_text(record.read_text())
    big = json.dumps({"piperack_version": A, "answers": {"x": "y" * 9_000_000}})
    cases = {
        "link": (
            lambda: (record.unlink(), record.symlink_to(elsewhere)),
            ".piperack.json: a symbolic link; piperack reads its record only from a plain file",
        ),
        "nested": (
            lambda: record.write_text('{"answers": ' + "[" * 200_000 + "]" * 200_000 + "}"),
            ".piperack.json: nested too deeply to be a record",
        ),
        "oversized": (
            lambda: record.write_text(big),
            f".piperack.json: {len(big)} bytes, over the 8388608-byte limit of a record",
        ),
    }
    for name, (make, message) in cases.items():
        if record.is_symlink():
            record.unlink()
        make()
        before = tree_hash(team_project)
        for extra in (["--check"], ["--dry-run", "--from", str(a_wheel(wheelhouse))], []):
            result = invoke_b(venv_b, team_project, "update-project", *extra)
            assert (result.returncode, result.stderr) == (1, f"error: {message}\n"), (name, extra)
            assert tree_hash(team_project) == before


def test_versions_are_pep440_in_check_and_update(team_project, venv_b):
    """0.2 is 0.2.0: the installed piperack B, a record spelling B with one more `.0` (its own
    virtualenv: the shared project one may hold another checkout's piperack of the same version)."""
    record = team_project / ".piperack.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "piperack_version": B + ".0"}))
    checked = invoke_b(venv_b, team_project, "update-project", "--check")
    assert (checked.stderr, checked.returncode) == ("", 0)
    assert checked.stdout == f"made with piperack {B}, the installed version: up to date\n"
    updated = invoke_b(venv_b, team_project, "update-project")
    assert (updated.stderr, updated.returncode) == ("", 0)
    assert f"already at piperack {B}: nothing to update" in updated.stdout


def test_large_answers_reach_the_rendering(team_project, venv_b, wheelhouse):
    """An answer far over the 128 KiB a single command-line argument may hold."""
    record = team_project / ".piperack.json"
    data = json.loads(record.read_text())
    data["answers"]["notes"] = "n" * 600_000
    record.write_text(json.dumps(data))
    git(team_project, "commit", "-qam", "a long answer")  # uncommitted, the preview would warn of a refusal
    dry = invoke_b(venv_b, team_project, "update-project", "--dry-run", "--from", str(a_wheel(wheelhouse)))
    assert (dry.returncode, dry.stderr) == (0, "")
    assert "  conflict  README.md  (1 conflict(s) marked inline)" in dry.stdout


def test_diff_into_a_closed_pipe_is_quiet(team_project, venv_b, wheelhouse, tree_hash):
    before = tree_hash(team_project)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head`) is gone before anything is written
    try:
        result = subprocess.run(
            [str(venv_b / "bin" / "invoke"), "update-project", "--diff", "--from", str(a_wheel(wheelhouse))],
            cwd=team_project,
            env=kitlib.invoke_env(venv_b),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, "")
    assert tree_hash(team_project) == before
