"""Unit tests of piperack.update: the per-file decisions, ownership, hostile wheels and records,
and that a failure while writing leaves the project as it was."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from piperack import fsutil, merge
from piperack import update as engine
from piperack.errors import PiperackError
from piperack.project import find_project


def exact(message: str) -> str:
    """A ``match=`` pattern for exactly this one-line message."""
    return f"^{re.escape(message)}$"


PYPROJECT = '[project]\nname = "demo"\nversion = "0.1.0"\n\n[tool.piperack]\npython_package = "demo"\n'


@pytest.fixture
def proj(tmp_path):
    root = tmp_path / "demo"
    root.mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    return find_project(root)


def put(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def actions(plan) -> dict[str, str]:
    return {c.path: c.action for c in plan.changes}


def test_each_file_gets_the_decision_its_three_versions_call_for(proj):
    base = {
        "same.txt": b"a\n",
        "template_only.txt": b"a\n",
        "team_only.txt": b"a\n",
        "both.txt": b"1\n2\n3\n4\n5\n",
        "clash.txt": b"x\n",
        "dropped.txt": b"a\n",
        "dropped_changed.txt": b"a\n",
        "team_deleted.txt": b"a\n",
        "pyproject.toml": PYPROJECT.encode(),
    }
    theirs = {
        "same.txt": b"a\n",
        "template_only.txt": b"b\n",
        "team_only.txt": b"a\n",
        "both.txt": b"1\n2\n3\n4\nfive\n",
        "clash.txt": b"theirs\n",
        "new.txt": b"new\n",
        "team_deleted.txt": b"b\n",
        "pyproject.toml": PYPROJECT.encode(),
    }
    put(
        proj.root,
        {
            "same.txt": b"a\n",
            "template_only.txt": b"a\n",
            "team_only.txt": b"mine\n",
            "both.txt": b"one\n2\n3\n4\n5\n",
            "clash.txt": b"ours\n",
            "dropped.txt": b"a\n",
            "dropped_changed.txt": b"mine\n",
        },
    )
    plan = engine.plan_update(proj, base, theirs, "1.0", "2.0")
    assert actions(plan) == {
        "both.txt": "merge",
        "clash.txt": "conflict",
        "dropped.txt": "delete",
        "dropped_changed.txt": "keep",
        "new.txt": "add",
        "team_deleted.txt": "keep",
        "team_only.txt": "keep",
        "template_only.txt": "update",
    }
    by_path = {c.path: c for c in plan.changes}
    assert by_path["both.txt"].data == b"one\n2\n3\n4\nfive\n"
    assert by_path["clash.txt"].data == b"<<<<<<< project\nours\n=======\ntheirs\n>>>>>>> piperack 2.0\n"
    assert by_path["team_only.txt"].data is None and by_path["dropped_changed.txt"].data is None
    assert by_path["dropped_changed.txt"].note == "dropped by the template; kept: the team changed it"
    assert by_path["team_deleted.txt"].note == "deleted by the team; the template changed it: not restored"
    assert by_path["team_only.txt"].note == "changed by the team only"


def test_team_owned_paths_are_never_planned(proj):
    owned = [
        "conf/base/parameters/x.yml",
        "data/x.duckdb",
        "src/demo/pipelines/ingest/nodes.py",
        "src/tests/pipelines/ingest/test_nodes.py",
        "requirements.txt",
        "samples/cities.csv",
    ]
    base = {rel: b"old\n" for rel in owned}
    theirs = {rel: b"new\n" for rel in owned}
    put(proj.root, {rel: b"ours\n" for rel in owned})
    assert engine.plan_update(proj, base, theirs, "1.0", "2.0").changes == []
    for rel in owned:
        assert engine.team_owned(rel, "demo")
    for rel in ["src/demo/runner.py", "src/demo/pipelines_extra.py", "confx.yml", "docker/Dockerfile", "README.md"]:
        assert not engine.team_owned(rel, "demo"), rel


def test_an_old_template_can_never_drop_git_or_journal_files(proj):
    """A hostile --from template holding the project's own .git/config byte for byte: "dropped by
    the template" would delete it; git's files, virtualenvs and journals are outside the plan."""
    mine = {".git/config": b"[core]\n", ".venv/pyvenv.cfg": b"home = x\n", ".piperack-backup-pull-x/j": b"{}\n"}
    put(proj.root, mine)
    plan = engine.plan_update(proj, base=mine, theirs={}, base_version="1.0", new_version="2.0")
    assert plan.changes == []


def test_binary_files_are_never_merged(proj):
    put(proj.root, {"logo.png": b"\x89PNG\0ours"})
    plan = engine.plan_update(proj, {"logo.png": b"\x89PNG\0base"}, {"logo.png": b"\x89PNG\0theirs"}, "1.0", "2.0")
    [change] = plan.changes
    assert (change.action, change.data) == ("conflict", None)
    assert change.note == "binary: not merged; the project's file is kept"


def test_the_piperack_pin_is_raised_even_when_the_team_edited_the_file(proj):
    base = {"requirements-dev.txt": b"-r requirements.txt\npiperack==1.0\npytest>=8\n"}
    theirs = {"requirements-dev.txt": b"-r requirements.txt\npiperack==2.0\npytest>=8\n"}
    put(proj.root, {"requirements-dev.txt": b"-r requirements.txt\npiperack==1.0\npytest>=8\n\nruff>=0.5\n"})
    [change] = engine.plan_update(proj, base, theirs, "1.0", "2.0").changes
    assert change.action == "merge"
    assert change.data == b"-r requirements.txt\npiperack==2.0\npytest>=8\n\nruff>=0.5\n"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{oops", "not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
        ("[]", "expected an object with piperack_version and answers"),
        ('{"piperack_version": "1..2"}', "piperack_version '1..2' is not a version"),
        ('{"piperack_version": "1.0", "answers": {"a": [1]}}', "answer 'a' must be a string or true/false, got [1]"),
        (
            '{"piperack_version": "1.0", "answers": {"_extensions": "x"}}',
            "answer '_extensions' must be a string or true/false, got 'x'",
        ),
        (b"\xff\xfe", "not valid JSON ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)"),
    ],
)
def test_hostile_records_are_refused_in_one_line(proj, content, message):
    path = proj.root / ".piperack.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(PiperackError, match=exact(f".piperack.json: {message}")):
        engine.read_record(proj)


def _wheel(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "piperack-1.0-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    return path


TEMPLATE = {
    "cookiecutter.json": b'{"name": "x"}',
    "{{cookiecutter.name}}/README.md": b"# {{ cookiecutter.name }}\n",
}


def test_a_wheel_gives_only_its_template_and_unsafe_members_refuse_it(tmp_path):
    good = _wheel(
        tmp_path,
        {**{f"piperack/template/{k}": v for k, v in TEMPLATE.items()}, "piperack/tasks.py": b"x = 1\n"},
    )
    files = engine.template_from(str(good))
    assert {p.as_posix() for p in files} == set(TEMPLATE)
    evil = _wheel(tmp_path, {"piperack/template/cookiecutter.json": b"{}", "../../escape.txt": b"x"})
    with pytest.raises(
        PiperackError,
        match=exact(f"--from {evil}: refused member '../../escape.txt': a path that climbs out with '..'"),
    ):
        engine.template_from(str(evil))
    assert not (tmp_path / "escape.txt").exists()
    empty = _wheel(tmp_path, {"piperack/tasks.py": b""})
    with pytest.raises(
        PiperackError,
        match=exact(f"--from {empty}: carries no piperack template (piperack/template/cookiecutter.json)"),
    ):
        engine.template_from(str(empty))
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(
        PiperackError,
        match=exact(f"--from {tmp_path / 'junk.whl'}: not a readable zip archive (File is not a zip file)"),
    ):
        engine.template_from(str(tmp_path / "junk.whl"))


@pytest.mark.parametrize("fail_at", [1, 3, "SIGTERM"])
def test_a_failure_while_writing_leaves_the_project_as_it_was(proj, monkeypatch, tree_hash, fail_at):
    base = {f"f{i}.txt": b"old\n" for i in range(5)} | {"gone.txt": b"x\n"}
    theirs = {f"f{i}.txt": b"new\n" for i in range(5)} | {"added/new.txt": b"n\n"}
    put(proj.root, base)
    (proj.root / ".piperack.json").write_text(json.dumps({"piperack_version": "1.0", "answers": {}}))
    monkeypatch.setattr(engine, "installed_version", lambda: "2.0")
    monkeypatch.setattr(engine, "download_template", lambda version: {})
    monkeypatch.setattr(engine, "read_template_folder", lambda folder: {})
    monkeypatch.setattr(engine, "render", lambda files, answers, version, label: base if "1.0" in label else theirs)
    monkeypatch.setattr(merge, "uncommitted", lambda root, paths: [])
    before = tree_hash(proj.root)
    real_replace = fsutil.os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == (2 if fail_at == "SIGTERM" else fail_at):
            if fail_at == "SIGTERM":
                import signal

                # SIGTERM arriving now: the handler the update installed runs (no signal to pytest).
                handler = signal.getsignal(signal.SIGTERM)
                assert callable(handler), "the update installed no SIGTERM handler"
                handler(signal.SIGTERM, None)
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", flaky_replace)
    with pytest.raises(KeyboardInterrupt if fail_at == "SIGTERM" else OSError):
        engine.update(proj)
    monkeypatch.setattr(fsutil.os, "replace", real_replace)
    assert tree_hash(proj.root) == before
    assert not [p for p in proj.root.rglob("*") if "piperack-tmp" in p.name or "piperack-backup" in p.name]


# -- uncommitted changes: refused by a real run, shown by --dry-run and --diff ---------------------

GIT = ["git", "-c", "user.name=Team", "-c", "user.email=team@example.invalid"]
DIRTY_WARNING = (
    "warning: uncommitted changes in 1 file(s) the update would touch: a.txt "
    "(commit or stash them, or pass --allow-dirty)\n"
)


@pytest.fixture
def dirty_proj(proj, monkeypatch):
    """A project whose a.txt the template and the team both changed, the team's latest edit not
    committed; b.txt only the template changed (committed as it was)."""
    import subprocess

    base = {"a.txt": b"1\n2\n3\n4\n5\n", "b.txt": b"old\n"}
    theirs = {"a.txt": b"1\n2\n3\n4\nfive\n", "b.txt": b"new\n"}
    put(proj.root, {"a.txt": b"one\n2\n3\n4\n5\n", "b.txt": b"old\n"})
    (proj.root / ".piperack.json").write_text(json.dumps({"piperack_version": "1.0", "answers": {}}))
    monkeypatch.setattr(engine, "installed_version", lambda: "2.0")
    monkeypatch.setattr(engine, "download_template", lambda version: {})
    monkeypatch.setattr(engine, "read_template_folder", lambda folder: {})
    monkeypatch.setattr(engine, "render", lambda files, answers, version, label: base if "1.0" in label else theirs)

    def git_init() -> None:
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "ours"]):
            subprocess.run([*GIT, *args], cwd=proj.root, check=True, capture_output=True)
        (proj.root / "a.txt").write_bytes(b"ONE\n2\n3\n4\n5\n")

    return git_init


@pytest.mark.parametrize("preview", [{"dry_run": True}, {"diff": True}], ids=["dry-run", "diff"])
def test_a_preview_marks_uncommitted_files_and_ends_with_the_refusal_as_a_warning(
    proj, dirty_proj, capsys, tree_hash, preview
):
    from piperack.options import UpdateOptions

    dirty_proj()
    before = tree_hash(proj.root)
    capsys.readouterr()
    engine.update(proj, UpdateOptions(**preview))
    out, err = capsys.readouterr()
    assert "  merge     a.txt  (uncommitted changes)\n  update    b.txt\n" in out
    assert err == DIRTY_WARNING
    engine.update(proj, UpdateOptions(allow_dirty=True, **preview))  # still marked; no warning
    out, err = capsys.readouterr()
    assert "  merge     a.txt  (uncommitted changes)\n" in out and err == ""
    assert tree_hash(proj.root) == before
    with pytest.raises(PiperackError, match=exact(DIRTY_WARNING[len("warning: ") : -1])):
        engine.update(proj)  # the real run refuses, as before
    assert tree_hash(proj.root) == before


def test_a_preview_outside_git_says_nothing_of_uncommitted_changes(proj, dirty_proj, capsys, tree_hash):
    """As pull --upgrade: outside a git work tree nothing can be checked, so a preview marks nothing
    and warns of nothing; the real run warns that it could not check, then updates."""
    from piperack.options import UpdateOptions

    (proj.root / "a.txt").write_bytes(b"ONE\n2\n3\n4\n5\n")
    before = tree_hash(proj.root)
    capsys.readouterr()
    for preview in ({"dry_run": True}, {"diff": True}):
        engine.update(proj, UpdateOptions(**preview))
        out, err = capsys.readouterr()
        assert "  merge     a.txt\n  update    b.txt\n" in out and err == ""
    assert tree_hash(proj.root) == before
    engine.update(proj)
    assert capsys.readouterr().err == (
        "warning: not a git work tree: cannot check for uncommitted changes (commit before updating)\n"
    )
    assert (proj.root / "a.txt").read_bytes() == b"ONE\n2\n3\n4\nfive\n"


def test_the_listing_note_joins_the_merge_note_and_the_mark():
    assert merge.listed_note("", False) == ""
    assert merge.listed_note("", True) == "  (uncommitted changes)"
    assert merge.listed_note("1 conflict(s) marked inline", False) == "  (1 conflict(s) marked inline)"
    assert merge.listed_note("1 conflict(s) marked inline", True) == (
        "  (1 conflict(s) marked inline; uncommitted changes)"
    )


# -- rendering: the installed piperack's code, never the template's (issue 20, kind 1) -------------


def _bake_files(tmp_path: Path, answers: dict) -> dict[str, bytes]:
    from piperack import bake

    made = bake.bake(tmp_path / "baked", answers)
    return {p.relative_to(made).as_posix(): p.read_bytes() for p in sorted(made.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "answers",
    [{}, {"include_example": False, "project_name": 'Sales "Q" \\ Data', "python_version": "3.12"}],
    ids=["defaults", "no-example"],
)
def test_the_renderer_makes_exactly_what_cookiecutter_bakes(tmp_path, answers):
    """The same files, byte for byte, as `piperack new` (cookiecutter with the hooks) makes."""
    from piperack import template

    baked = _bake_files(tmp_path, answers)
    record = json.loads(baked[".piperack.json"])
    files = template.read_template_folder(template.template_dir())
    assert template.render(files, record["answers"], record["piperack_version"], "this") == baked


def test_the_example_paths_are_the_hooks(tmp_path):
    from piperack import template

    hook = (template.template_dir() / "hooks" / "post_gen_project.py").read_text()
    listed = hook.split("EXAMPLE_PATHS = [", 1)[1].split("]", 1)[0]
    names = [line.strip().strip(",").removeprefix("f").strip('"') for line in listed.splitlines() if line.strip()]
    assert names == [p.replace("{pkg}", "{PACKAGE}") for p in template.EXAMPLE_PATHS]


EVIL_HOOK = """import pathlib, sys
pathlib.Path({marker!r}).write_text("the hook ran")
sys.exit(3)
"""
EVIL_EXTENSION = """import pathlib, sys
from jinja2.ext import Extension
pathlib.Path({marker!r}).write_text("local_extensions ran")


class Evil(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        pathlib.Path({marker!r}).write_text("the extension ran")
        sys.exit(4)
"""


def evil_template(root: Path, marker: Path, readme: str = "# {{ cookiecutter.project_name }}\n") -> Path:
    """A template whose hooks and local extension would leave ``marker`` and exit, if they ran."""
    questions = {"project_name": "Demo Project", "repo_name": "demo", "python_package": "demo"}
    questions["_extensions"] = ["local_extensions.Evil"]
    files = {
        "cookiecutter.json": json.dumps(questions),
        "hooks/pre_gen_project.py": EVIL_HOOK.format(marker=str(marker)),
        "hooks/post_gen_project.py": EVIL_HOOK.format(marker=str(marker)),
        "local_extensions.py": EVIL_EXTENSION.format(marker=str(marker)),
        "{{cookiecutter.repo_name}}/README.md": readme,
    }
    put(root, {rel: text.encode() for rel, text in files.items()})
    return root


def test_no_hook_and_no_local_extension_of_an_old_template_runs(tmp_path):
    from piperack.template import render

    marker = tmp_path / "marker"
    files = engine.template_from(str(evil_template(tmp_path / "old", marker)))
    assert render(files, {"project_name": "Ours"}, "0.1", "piperack 0.1") == {"README.md": b"# Ours\n"}
    assert not marker.exists()


@pytest.mark.parametrize(
    "readme",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
        "{{ self._TemplateReference__context }}",
    ],
)
def test_template_jinja_is_sandboxed(tmp_path, readme):
    from piperack.template import render

    marker = tmp_path / "marker"
    files = engine.template_from(str(evil_template(tmp_path / "old", marker, readme.replace("MARKER", str(marker)))))
    with pytest.raises(
        PiperackError,
        match=r"^the piperack 0\.1 template could not be rendered with the recorded answers \(README\.md\): access to "
        r"attribute '[^']+' of '[^']+' object is unsafe\.$",
    ):
        render(files, {}, "0.1", "piperack 0.1")
    assert not marker.exists()


def test_a_rendered_path_leaving_the_project_is_refused(tmp_path):
    from piperack.template import render

    root = evil_template(tmp_path / "old", tmp_path / "marker")
    put(root, {"{{cookiecutter.repo_name}}/{{cookiecutter.project_name}}": b"x"})
    files = engine.template_from(str(root))
    with pytest.raises(
        PiperackError,
        match=exact("x: the template file '../../etc/cron.d/x' renders to a path outside the project; refused"),
    ):
        render(files, {"project_name": "../../etc/cron.d/x"}, "0.1", "x")


def test_answers_are_checked_by_the_installed_rules_and_never_rendered(tmp_path):
    from piperack import template

    files = template.read_template_folder(template.template_dir())
    with pytest.raises(
        PiperackError, match=exact("x: python_package 'class' is a Python keyword: choose another name")
    ):
        template.render(files, {"python_package": "class"}, "1.0", "x")
    with pytest.raises(PiperackError, match=r"^x: project_name '\{\{ 7\*7 \}\}' contains '\{\{': an answer is text"):
        template.render(files, {"project_name": "{{ 7*7 }}"}, "1.0", "x")


# -- the record and versions (kind 4) ----------------------------------------------------------------


def test_a_linked_nested_oversized_or_folder_record_is_one_line_naming_it(proj, tmp_path, monkeypatch):
    path = proj.root / ".piperack.json"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"piperack_version": "1.0", "answers": {}}')
    path.symlink_to(elsewhere)
    with pytest.raises(
        PiperackError, match=exact(".piperack.json: a symbolic link; piperack reads its record only from a plain file")
    ):
        engine.read_record(proj)
    path.unlink()
    path.write_text('{"answers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(PiperackError, match=exact(".piperack.json: nested too deeply to be a record")):
        engine.read_record(proj)
    monkeypatch.setattr(engine, "MAX_RECORD_BYTES", 1000)
    path.write_text(json.dumps({"piperack_version": "1.0", "answers": {"x": "y" * 2000}}))
    size = path.stat().st_size
    with pytest.raises(
        PiperackError, match=exact(f".piperack.json: {size} bytes, over the 1000-byte limit of a record")
    ):
        engine.read_record(proj)
    path.unlink()
    path.mkdir()
    with pytest.raises(PiperackError, match=exact(".piperack.json: not a plain file")):
        engine.read_record(proj)


@pytest.mark.parametrize("recorded, installed", [("0.2", "0.2.0"), ("0.2.0", "0.2"), ("1.0.0.0", "1.0")])
def test_check_compares_versions_as_pep440(proj, monkeypatch, recorded, installed):
    (proj.root / ".piperack.json").write_text(json.dumps({"piperack_version": recorded, "answers": {}}))
    monkeypatch.setattr(engine, "installed_version", lambda: installed)
    assert engine.check(proj) == f"made with piperack {installed}, the installed version: up to date"
    assert engine.update(proj) is None  # "already at piperack …: nothing to update"


def test_check_on_a_tree_a_killed_update_left_says_to_rerun(proj, monkeypatch):
    (proj.root / ".piperack.json").write_text(json.dumps({"piperack_version": "2.0", "answers": {}}))
    monkeypatch.setattr(engine, "installed_version", lambda: "2.0")
    tx = fsutil.Transaction(proj.root, "update-project")
    tx.change(".piperack.json", b'{"piperack_version": "2.0"}')
    tx._journal.close()  # killed here
    with pytest.raises(
        PiperackError,
        match=exact(
            "an earlier `invoke update-project` was killed midway: run invoke update-project again "
            "(it puts the project back first)"
        ),
    ):
        engine.check(proj)


def test_answers_of_a_project_without_a_record_are_never_read_through_a_link(proj, tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text("# the secret first line\n")
    (proj.root / "README.md").symlink_to(secret)
    assert "project_name" not in engine.inferred_answers(proj)
    (proj.root / "README.md").unlink()
    (proj.root / "README.md").write_text("# Our Project\n")
    assert engine.inferred_answers(proj)["project_name"] == "Our Project"


def test_a_template_that_renders_too_much_is_stopped(tmp_path, monkeypatch):
    from piperack import template

    monkeypatch.setattr(template, "MAX_TEMPLATE_BYTES", 10_000)
    readme = "{% for i in range(99999) %}{% for j in range(99999) %}0123456789{% endfor %}{% endfor %}"
    files = engine.template_from(str(evil_template(tmp_path / "old", tmp_path / "marker", readme)))
    with pytest.raises(PiperackError, match=exact("x: the template renders to more than 10000 bytes; refused")):
        template.render(files, {}, "0.1", "x")
