"""publish's and outdated's engine without a server: where the URLs come from, which archives are
sent, how a pulled record becomes a question for its index and how the answer is judged."""

from __future__ import annotations

import hashlib

import pytest
from packaging.version import Version

from piperack import outdated, publish
from piperack.errors import PiperackError
from piperack.options import PublishOptions
from piperack.project import find_project
from piperack.sdist import SUMS_FILE


def _project(root, extra: str = ""):
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    (root / "pyproject.toml").write_text(text + extra, encoding="utf-8")
    return find_project(root)


def test_repository_url_precedence_and_default_index(mini):
    project = _project(mini, '\n[tool.piperack.publish]\nrepository-url = "https://team.example/upload/"\n')
    env = {"TWINE_REPOSITORY_URL": "https://env.example/"}
    assert PublishOptions().resolved(project, env) == (
        "https://team.example/upload/",
        "https://team.example/upload/simple/",
    )
    assert PublishOptions(repository_url="http://cli.example", index_url="http://cli.example/+simple/").resolved(
        project, env
    ) == ("http://cli.example", "http://cli.example/+simple/")


def test_paths_in_messages_are_relative_to_the_project_when_inside_it(mini, tmp_path):
    """Project.label: how package's and publish's messages name a file."""
    project = find_project(mini)
    assert project.label(mini / "dist" / "demo-0.1.0.tar.gz") == "dist/demo-0.1.0.tar.gz"
    assert project.label(mini) == "."
    assert project.label(tmp_path / "elsewhere.tar.gz") == str(tmp_path / "elsewhere.tar.gz")


def test_env_repository_and_bad_settings(mini):
    project = _project(mini)
    assert PublishOptions().resolved(project, {"TWINE_REPOSITORY_URL": "https://env.example/"})[0] == (
        "https://env.example/"
    )
    with pytest.raises(PiperackError, match=r"^repository-url 'ftp://x': expected an http:// or https:// URL$"):
        PublishOptions(repository_url="ftp://x").resolved(project, {})
    bad = _project(mini, '\n[tool.piperack.publish]\nrepository = "https://x/"\n')
    with pytest.raises(PiperackError, match=r"unknown key 'repository' \(allowed: repository-url, index-url\)$"):
        PublishOptions().resolved(bad, {})


def test_local_sdists_come_from_sums_and_must_match(mini):
    dist = mini / "dist"
    dist.mkdir()
    (dist / "shared-0.1.0.tar.gz").write_bytes(b"one")
    (dist / "stray-9.0.tar.gz").write_bytes(b"not listed: never published")
    digest = hashlib.sha256(b"one").hexdigest()
    (dist / SUMS_FILE).write_text(f"{digest}  shared-0.1.0.tar.gz\n", encoding="utf-8")
    project = _project(mini)
    found = publish.local_sdists(project)
    assert [(u.path.name, u.name, u.version, u.sha256) for u in found] == [
        ("shared-0.1.0.tar.gz", "shared", "0.1.0", digest)
    ]
    (dist / "shared-0.1.0.tar.gz").write_bytes(b"two")
    with pytest.raises(PiperackError) as caught:
        publish.local_sdists(project)
    assert str(caught.value) == (
        "dist/shared-0.1.0.tar.gz is not the file `invoke package` wrote (its sha256 differs from "
        "dist/SHA256SUMS's); package it again before publishing"
    )


def test_local_sdists_include_manifest_destinations(mini):
    shelf = mini / "dist" / "shared"
    shelf.mkdir(parents=True)
    (shelf / "tools-1.0.tar.gz").write_bytes(b"one")
    digest = hashlib.sha256(b"one").hexdigest()
    (shelf / SUMS_FILE).write_text(f"{digest}  tools-1.0.tar.gz\n", encoding="utf-8")
    project = _project(mini, '\n[tool.piperack.package]\n"pipelines.tools" = {destination = "dist/shared"}\n')
    assert [u.path.relative_to(mini).as_posix() for u in publish.local_sdists(project)] == [
        "dist/shared/tools-1.0.tar.gz"
    ]


def test_userinfo_is_quoted_and_replaced():
    assert publish._with_userinfo("http://old:pw@h:1/simple/?x=1", "a@b", "p:w/") == "http://a%40b:p%3Aw%2F@h:1/simple/"
    assert publish._with_userinfo("http://h/simple/", None, None) == "http://h/simple/"


PULLED = """
[tool.piperack.pulled]
"pipelines.bare" = {source = "shared", version = "0.1.0", sha256 = "00", index = "http://i/simple/"}
"pipelines.ranged" = {source = "Shared~=0.1", version = "0.1.0", sha256 = "00", index = "http://i/simple/"}
"pipelines.spec" = {source = "shared", specifier = "<0.2", version = "0.1.0", sha256 = "00", index = "http://i/simple/"}
"pipelines.file" = {source = "dist/shared-0.1.0.tar.gz", version = "0.1.0", sha256 = "00"}
"pipelines.odd" = {source = "shared", version = "not a version", sha256 = "00", index = "http://i/simple/"}
"""


def test_records_become_questions(mini):
    rows = {r.module: r for r in outdated._rows(_project(mini, PULLED))}
    assert rows["pipelines.bare"].query[:2] == ("http://i/simple/", "shared")
    assert str(rows["pipelines.ranged"].query[2]) == "~=0.1"
    assert str(rows["pipelines.spec"].query[2]) == "<0.2"
    assert rows["pipelines.file"].query is None
    assert rows["pipelines.file"].status == "cannot be checked: pulled from a file or URL (dist/shared-0.1.0.tar.gz)"
    assert rows["pipelines.odd"].status == "cannot be checked: Invalid version: 'not a version'"


@pytest.mark.parametrize(
    ("module", "answer", "expected"),
    [
        (
            "pipelines.bare",
            ["0.1.0", "0.2.0", "1.0.0rc1"],
            ("0.2.0", "0.2.0", True, "behind: invoke pull --upgrade bare"),
        ),
        ("pipelines.ranged", ["0.1.0", "0.3.1", "1.2"], ("0.3.1", "1.2", True, "behind: invoke pull --upgrade ranged")),
        (
            "pipelines.spec",
            ["0.1.0", "0.2.0"],
            ("0.1.0", "0.2.0", False, "up to date within its range (newer outside it)"),
        ),
        ("pipelines.bare", ["0.1.0"], ("0.1.0", "0.1.0", False, "up to date")),
    ],
)
def test_answers_are_judged(mini, module, answer, expected):
    row = {r.module: r for r in outdated._rows(_project(mini, PULLED))}[module]
    outdated._judge(row, [Version(v) for v in answer], 30)
    assert (row.allowed, row.newest, row.behind, row.status) == expected


def test_no_answer_and_an_empty_page(mini):
    rows = {r.module: r for r in outdated._rows(_project(mini, PULLED))}
    outdated._judge(rows["pipelines.bare"], None, 2.5)
    assert (rows["pipelines.bare"].status, rows["pipelines.bare"].unknown) == (
        "no answer from http://i/simple/ within 2.5 s",
        True,
    )
    outdated._judge(rows["pipelines.ranged"], [], 30)
    assert rows["pipelines.ranged"].status == "cannot be checked: http://i/simple/ has no sdist of it"
