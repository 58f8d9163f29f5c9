"""Unit tests of the pure parts of piperack.docker (no engine needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from piperack import docker
from piperack.errors import PiperackError


class FakeProject:
    def __init__(self, root: Path, name="My Project", package="my_project", build_system=None):
        self.root = root
        self.package = package
        self.pyproject = root / "pyproject.toml"
        self.pyproject_data = {"project": {"name": name}}
        if build_system is not None:
            self.pyproject_data["build-system"] = build_system


def exact(message: str) -> str:
    """A ``match=`` pattern for exactly this one-line message."""
    return f"^{re.escape(message)}$"


# What pip accepts on glibc 2.36 / x86_64, from PEP 600: every manylinux_2_N tag from 2_36 down to
# 2_5, newest first, then the legacy aliases PEP 600 maps to them (manylinux2014 = 2_17,
# manylinux2010 = 2_12, manylinux1 = 2_5).
GLIBC_2_36_X86_64 = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]


def image_platform(**kw):
    values = dict(python="3.11", implementation="cpython", machine="x86_64", libc="glibc", libc_version="2.36")
    values.update(kw)
    return docker.ImagePlatform(**values)


def test_platforms_cover_every_manylinux_tag_the_image_accepts():
    assert image_platform().platforms() == GLIBC_2_36_X86_64
    assert len(GLIBC_2_36_X86_64) == 32 + 3


def test_platforms_of_an_old_glibc_and_of_aarch64():
    assert image_platform(libc_version="2.12").platforms() == [
        *(f"manylinux_2_{minor}_x86_64" for minor in range(12, 4, -1)),
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
    ]
    # manylinux2010 and manylinux1 were never defined for aarch64 (PEP 571, PEP 513)
    assert image_platform(machine="aarch64", libc_version="2.31").platforms() == [
        *(f"manylinux_2_{minor}_aarch64" for minor in range(31, 4, -1)),
        "manylinux2014_aarch64",
    ]


def test_platforms_of_musl():
    assert image_platform(libc="musl", libc_version="1.2").platforms() == [
        "musllinux_1_2_x86_64",
        "musllinux_1_1_x86_64",
        "musllinux_1_0_x86_64",
    ]


def test_unknown_libc_version_is_a_user_error():
    with pytest.raises(PiperackError, match=exact("cannot tell the base image's C library version (glibc '')")):
        image_platform(libc_version="").platforms()


def test_pip_download_asks_for_the_image_python_not_the_host(tmp_path):
    cmd = docker.pip_download_command(
        tmp_path / "requirements.txt", ["setuptools>=68"], image_platform(python="3.12"), tmp_path
    )
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12"
    assert cmd[cmd.index("--abi") + 1] == "cp312"
    assert cmd[-3:] == ["-r", str(tmp_path / "requirements.txt"), "setuptools>=68"]
    assert [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"] == GLIBC_2_36_X86_64
    assert [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--abi"] == ["cp312", "abi3", "none"]
    assert cmd[cmd.index("--implementation") + 1] == "cp"


def test_wheelhouse_key_changes_with_requirements_platform_and_backend():
    base = docker.wheelhouse_key(b"a==1\n", ["setuptools"], image_platform())
    assert base == docker.wheelhouse_key(b"a==1\n", ["setuptools"], image_platform())
    assert base != docker.wheelhouse_key(b"a==2\n", ["setuptools"], image_platform())
    assert base != docker.wheelhouse_key(b"a==1\n", ["hatchling"], image_platform())
    assert base != docker.wheelhouse_key(b"a==1\n", ["setuptools"], image_platform(python="3.12"))


def test_default_tag_is_a_valid_lowercase_reference(tmp_path):
    assert docker.default_tag(FakeProject(tmp_path, name="My Big_Data Project")) == "my-big_data-project:latest"


def test_dockerfile_base_image_is_read_from_the_arg_line(tmp_path):
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("# x\nARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\n")
    assert docker.dockerfile_base_image(FakeProject(tmp_path)) == "python:3.12-slim"
    (tmp_path / "docker" / "Dockerfile").write_text("FROM python:3.12-slim\n")
    with pytest.raises(
        PiperackError, match=exact("docker/Dockerfile: no `ARG BASE_IMAGE=<image>` line; pass --base-image")
    ):
        docker.dockerfile_base_image(FakeProject(tmp_path))


def test_build_requires_default_and_validation(tmp_path):
    # No [build-system]: what pip builds such a project with (its fallback, setuptools>=40.8.0).
    assert docker.build_requires(FakeProject(tmp_path)) == ["setuptools>=40.8.0"]
    assert docker.build_requires(FakeProject(tmp_path, build_system={"requires": ["hatchling"]})) == ["hatchling"]
    with pytest.raises(
        PiperackError, match=exact(f"{tmp_path / 'pyproject.toml'}: [build-system] requires must be a list of strings")
    ):
        docker.build_requires(FakeProject(tmp_path, build_system={"requires": "hatchling"}))


def test_image_user_is_never_root(monkeypatch):
    monkeypatch.setattr(docker, "host_ids", lambda: (0, 0))
    assert docker.image_ids(None, None) == (1000, 1000)
    monkeypatch.setattr(docker, "host_ids", lambda: (1234, 567))
    assert docker.image_ids(None, None) == (1234, 567)
    assert docker.image_ids("2000", "3000") == (2000, 3000)
    with pytest.raises(PiperackError, match=exact("--uid 0 is refused: the image runs as a non-root user")):
        docker.image_ids(0, None)
    with pytest.raises(PiperackError, match=exact("--gid must be a non-negative integer, got 'staff'")):
        docker.image_ids(None, "staff")


def test_build_args_are_key_value():
    assert docker.parse_build_args(["A=1", "B=x=y", "C="]) == [("A", "1"), ("B", "x=y"), ("C", "")]
    with pytest.raises(PiperackError, match=exact("invalid --build-arg 'novalue': expected KEY=VALUE")):
        docker.parse_build_args(["novalue"])
    with pytest.raises(PiperackError, match=exact("invalid --build-arg '1X=2': expected KEY=VALUE")):
        docker.parse_build_args(["1X=2"])


def test_docker_args_are_split_like_a_shell():
    assert docker.split_docker_args("-e 'A=b c' --memory 2g") == ["-e", "A=b c", "--memory", "2g"]
    with pytest.raises(PiperackError, match=exact('invalid --docker-args "\'unclosed": No closing quotation')):
        docker.split_docker_args("'unclosed")


def test_build_command(tmp_path):
    cmd = docker.build_command(
        "docker", FakeProject(tmp_path), "t:1", "base:2", 1000, 1001, [("K", "V")], True, ["--pull"]
    )
    assert cmd[:2] == ["docker", "build"]
    assert "BASE_IMAGE=base:2" in cmd and "UID=1000" in cmd and "GID=1001" in cmd and "K=V" in cmd
    assert "--no-cache" in cmd
    # offline by default; the user's --docker-args come after it, so they can override it
    assert cmd[-4:] == ["--network", "none", "--pull", str(tmp_path)]


def test_run_command_mounts_data_rw_and_conf_local_ro_as_the_host_user(tmp_path, monkeypatch):
    monkeypatch.setattr(docker, "host_ids", lambda: (1234, 567))
    cmd = docker.run_command("docker", FakeProject(tmp_path), "t:1", ["python", "-V"], "none", ["-e", "X"], False)
    assert cmd[:3] == ["docker", "run", "--rm"]
    assert cmd[cmd.index("--user") + 1] == "1234:567"
    volumes = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--volume"]
    assert volumes == [f"{tmp_path / 'data'}:/app/data:rw", f"{tmp_path / 'conf' / 'local'}:/app/conf/local:ro"]
    assert cmd[cmd.index("--network") + 1] == "none"
    assert cmd[-5:] == ["-e", "X", "t:1", "python", "-V"]
    assert "--network" not in docker.run_command("docker", FakeProject(tmp_path), "t", [], None, [], False)


def test_run_command_mounts_the_projects_logs_unless_linked(tmp_path, monkeypatch):
    """docker-run's log and its line in logs/runs.jsonl land in the project; a linked logs/ is never
    mounted (docker would follow the link on the host)."""
    monkeypatch.setattr(docker, "host_ids", lambda: (1234, 567))

    def volumes():
        cmd = docker.run_command("docker", FakeProject(tmp_path), "t", [], None, [], False)
        return [cmd[i + 1] for i, a in enumerate(cmd) if a == "--volume"]

    (tmp_path / "logs").mkdir()
    assert volumes()[-1] == f"{tmp_path / 'logs'}:/app/logs:rw"
    (tmp_path / "logs").rmdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "logs").symlink_to(tmp_path / "elsewhere")
    assert not any(v.endswith(":/app/logs:rw") for v in volumes())


def test_base_image_python_must_satisfy_requires_python(tmp_path):
    project = FakeProject(tmp_path)
    docker.check_requires_python(project, image_platform(python="3.11"), "b")  # no requires-python: fine
    project.pyproject_data["project"]["requires-python"] = ">=3.11"
    docker.check_requires_python(project, image_platform(python="3.12"), "b")
    project.pyproject_data["project"]["requires-python"] = ">=3.13"
    with pytest.raises(
        PiperackError,
        match=exact(
            "base image 'b' has Python 3.11, but pyproject.toml requires-python is '>=3.13'; "
            "pick a matching base image (--base-image python:<version>-slim)"
        ),
    ):
        docker.check_requires_python(project, image_platform(python="3.11"), "b")
    project.pyproject_data["project"]["requires-python"] = "~=3.11.4"
    docker.check_requires_python(project, image_platform(python="3.11"), "b")


@pytest.mark.parametrize("spec", [">=3.11", ">= 3.10", ">=3.12", " >=3.9 ", ">=4.0"])
@pytest.mark.parametrize("python", ["3.9", "3.10", "3.11", "3.12", "3.13"])
def test_requires_python_shortcut_agrees_with_packaging(tmp_path, spec, python):
    """A plain ">=X.Y" is decided without importing packaging; the answer must be packaging's
    (",>=0" keeps the same meaning but takes the packaging path)."""

    def fits(text) -> bool:
        project = FakeProject(tmp_path)
        project.pyproject_data["project"]["requires-python"] = text
        try:
            docker.check_requires_python(project, image_platform(python=python), "b")
        except PiperackError:
            return False
        return True

    assert fits(spec) == fits(spec + ",>=0")


def test_find_image_asks_the_engine_only_when_the_image_lookup_fails(monkeypatch):
    asked = []
    monkeypatch.setattr(docker, "docker_exe", lambda: "docker")
    monkeypatch.setattr(docker, "check_engine", lambda: asked.append("version") or "docker")
    monkeypatch.setattr(docker, "_image_id", lambda exe, image: "sha256:1" if image == "have" else "")
    assert docker.find_image("have") == ("docker", "sha256:1") and asked == []
    assert docker.find_image("missing") == ("docker", "") and asked == ["version"]

    def no_engine():
        raise PiperackError("no Docker engine answers")

    monkeypatch.setattr(docker, "check_engine", no_engine)
    with pytest.raises(PiperackError, match="no Docker engine answers"):
        docker.find_image("missing")
