"""docker-build / docker-run / docker-cmd on a real Docker engine, as a user runs them.

One project is built once on the offline base image (PIPERACK_TEST_BASE_IMAGE, or built/reused
with scripts/build-base-image.sh), run, changed by one line and rebuilt; that is all the building
the module does. Without an engine the tests skip with the reason, except under CI=true, where they
fail: CI must run them (.ci/docker.sh starts an engine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

KIT = Path(__file__).resolve().parents[1]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BUILD_TIMEOUT = 1200


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the docker tests must run, not skip)")
    pytest.skip(reason)


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def _engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return _docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0
    except OSError:
        return False


def _layers(tag: str) -> list[str]:
    return json.loads(_docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", tag).stdout)


def _image_python(image: str) -> str:
    """The image's own "X.Y, machine" (its python3's version and platform.machine())."""
    return _docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python3",
        image,
        "-c",
        "import platform, sys; print('%d.%d, %s' % (*sys.version_info[:2], platform.machine()))",
    ).stdout.strip()


def _output(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


@pytest.fixture(scope="module")
def engine():
    if not _engine_answers():
        _unavailable("no Docker engine answers (start one: scripts/docker-engine.sh start; .ci/run does)")


@pytest.fixture(scope="module")
def base_image(engine) -> str:
    tag = os.environ.get("PIPERACK_TEST_BASE_IMAGE")
    if tag:
        if _docker("image", "inspect", tag, check=False).returncode != 0:
            pytest.fail(f"PIPERACK_TEST_BASE_IMAGE={tag} is not in the engine (.ci/docker.sh start builds it)")
        return tag
    proc = subprocess.run(["bash", str(KIT / "scripts" / "build-base-image.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        _unavailable(f"cannot build the offline base image (needs root and debootstrap): {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built(engine, base_image, project, run_invoke, tmp_path_factory):
    """A private copy of the session project, built once as a unique tag; removed afterwards."""
    root = tmp_path_factory.mktemp("docker") / project.name
    shutil.copytree(project, root, symlinks=True)
    tag = f"piperack-test-{uuid.uuid4().hex[:10]}:latest"
    proc = run_invoke(root, "docker-build", "--tag", tag, "--base-image", base_image, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, _output(proc)
    images = {_docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()}
    state = {"root": root, "tag": tag, "build": proc, "images": images, "base": base_image}
    yield state
    for image in state["images"]:
        _docker("rmi", "--force", image, check=False)


def _dependency_step_cached(output: str) -> bool:
    """Whether the build log says the `pip install -r requirements.txt` step came from the cache,
    in the legacy builder's words (" ---> Using cache" after the step) or BuildKit's ("#N CACHED")."""
    lines = output.splitlines()
    steps = [i for i, line in enumerate(lines) if "-r /tmp/requirements.txt" in line]
    if not steps:
        return False
    for i in steps:
        buildkit = re.match(r"#(\d+) ", lines[i])
        if buildkit and f"#{buildkit.group(1)} CACHED" in lines:
            return True
        if not buildkit and i + 1 < len(lines) and lines[i + 1].strip() == "---> Using cache":
            return True
    return False


def _run_steps(output: str) -> dict[str, bool]:
    """Each RUN step of the build log -> whether it executed rather than came from the cache, in
    the legacy builder's words ("Step N/M : RUN …" then " ---> Using cache") or BuildKit's
    ("#N [stage i/j] RUN …" and "#N CACHED")."""
    lines = output.splitlines()
    steps = {}
    for i, line in enumerate(lines):
        buildkit = re.match(r"(#\d+) \[[^\]]+\] RUN ", line)
        if buildkit:
            steps[line] = f"{buildkit.group(1)} CACHED" not in lines
        elif re.match(r"Step \d+/\d+ : RUN ", line):
            steps[line] = i + 1 >= len(lines) or lines[i + 1].strip() != "---> Using cache"
    return steps


def _no_step_ran(output: str) -> bool:
    """The build ran no RUN step (no pip, no build backend, no container); the log shows some."""
    steps = _run_steps(output)
    return bool(steps) and not any(steps.values())


def _change_code(root: Path, marker: str) -> None:
    """A code-only change that shows when it runs: importing the ingest nodes prints ``marker``."""
    nodes = root / "src" / _package(root) / "pipelines" / "ingest" / "nodes.py"
    nodes.write_text(nodes.read_text() + f"\nprint({marker!r}, flush=True)\n")


def _package(root: Path) -> str:
    import tomllib

    return tomllib.loads((root / "pyproject.toml").read_text())["tool"]["piperack"]["python_package"]


def test_build_fills_the_wheelhouse_for_the_image_python_and_leaves_no_build_tools(built, run_invoke):
    root, tag = built["root"], built["tag"]
    wheels = sorted(p.name for p in (root / ".docker" / "wheelhouse").glob("*.whl"))
    names = {w.split("-")[0].lower() for w in wheels}
    import tomllib

    from packaging.requirements import Requirement

    backend = {
        Requirement(r).name.lower().replace("-", "_")
        for r in tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"]
    }
    assert {"pandas", "duckdb", "requests", "pyyaml"} | backend <= names, wheels
    python = _docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python3",
        built["base"],
        "-c",
        "import sys; print('cp%d%d' % sys.version_info[:2])",
    ).stdout.strip()
    from packaging.utils import parse_wheel_filename

    def fits(tag) -> bool:  # built for the image's CPython (its own ABI, or the stable ABI of an older one)
        return tag.interpreter == python or (tag.abi == "abi3" and int(tag.interpreter[3:]) <= int(python[3:]))

    compiled = [w for w in wheels if "-cp3" in w]
    assert compiled and all(any(fits(t) for t in parse_wheel_filename(w)[3]) for w in compiled), (python, wheels)
    # The build streamed docker's own output: the builder's last word names the tag.
    log = built["build"].stdout + built["build"].stderr
    if re.search(r"^#\d+ ", log, re.M):  # BuildKit
        assert re.search(rf"^#\d+ naming to docker\.io/library/{re.escape(tag)}( done)?$", log, re.M), log
    else:  # the legacy builder
        assert f"Successfully tagged {tag}" in built["build"].stdout.splitlines(), log

    meta = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    dist, version = meta["name"], meta["version"]
    config = json.loads(_docker("image", "inspect", "--format", "{{json .Config}}", tag).stdout)
    assert config["User"] and not config["User"].startswith("0"), config["User"]
    assert config["Cmd"] == ["python", "-m", _package(root), "run"]

    check = (
        "import importlib.util as u, os, sys; "
        "assert u.find_spec('pip') is None, 'pip'; assert u.find_spec('setuptools') is None, 'setuptools'; "
        "assert not os.path.exists('/tmp/wheelhouse') and not os.path.exists('/opt/tools'), 'build leftovers'; "
        "assert not os.path.exists(os.path.expanduser('~/.cache/pip')), 'pip cache'; "
        "assert os.path.isdir('conf/base') and os.path.isfile('samples/cities.csv'), os.listdir('.'); "
        f"import {_package(root)} as p, importlib.metadata as md; "
        # the code is imported from /app/src (its own layer), the metadata from the venv
        f"assert p.__file__ == '/app/src/{_package(root)}/__init__.py', p.__file__; "
        f"assert md.version({dist!r}) == {version!r}, md.version({dist!r}); "
        "print('ok', os.getuid())"
    )
    proc = run_invoke(root, "docker-cmd", "--tag", tag, "--network", "none", "--", "python", "-c", check)
    assert proc.returncode == 0, _output(proc)
    assert f"ok {os.getuid()}" in proc.stdout


def test_run_writes_duckdb_on_the_host_owned_by_the_user(built, run_invoke, tmp_path):
    import duckdb

    root, tag = built["root"], built["tag"]
    shutil.rmtree(root / "data", ignore_errors=True)  # docker-run creates its mount folders first
    shutil.rmtree(root / "logs", ignore_errors=True)
    proc = run_invoke(root, "docker-run", "--tag", tag, "--network", "none", "--pipeline", "ingest")
    assert proc.returncode == 0, _output(proc)
    assert "WARNING" not in proc.stdout + proc.stderr, _output(proc)  # the log and the record could be written
    database = root / "data" / "ingest.duckdb"
    stat = database.stat()
    assert (stat.st_uid, stat.st_gid) == (os.getuid(), os.getgid())
    # the container's run is recorded in the project, as `invoke run` records its own
    records = [json.loads(line) for line in (root / "logs" / "runs.jsonl").read_text().splitlines()]
    assert [(p["name"], p["status"]) for p in records[-1]["pipelines"]] == [("ingest", "success")]
    assert (root / "logs" / "runs.jsonl").stat().st_uid == os.getuid()
    with duckdb.connect(str(database), read_only=True) as con:
        in_container = con.execute("SELECT * FROM cities ORDER BY ALL").fetchall()

    # The same pipeline run on the host from the same project gives the same table.
    host = tmp_path / "host"
    shutil.copytree(root, host, ignore=shutil.ignore_patterns("data", ".docker"))
    proc = run_invoke(host, "run", "--pipeline", "ingest")
    assert proc.returncode == 0, _output(proc)
    with duckdb.connect(str(host / "data" / "ingest.duckdb"), read_only=True) as con:
        on_host = con.execute("SELECT * FROM cities ORDER BY ALL").fetchall()
    assert in_container and in_container == on_host


def _docker_socket_gid() -> int:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip(f"DOCKER_HOST={host} is not a unix socket; cannot hand it to another user")
    return os.stat(host.removeprefix("unix://")).st_gid


def test_run_by_another_host_user_writes_files_that_user_owns(wheelhouse, built):
    """As root the main run test proves little about ownership (root writes root's files), so run
    docker-run here as an unprivileged uid that owns its project copy, as a real user would (with a
    virtualenv that user can reach: the kit's interpreter may sit in root's home)."""
    if os.getuid() != 0:
        pytest.skip("not root: test_run_writes_duckdb_on_the_host_owned_by_the_user already runs as a non-root user")
    import tempfile

    from scripts import kitlib

    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if not python:
        _unavailable("no system python3 outside root's home for the unprivileged user")
    uid = gid = 4242
    holder = Path(tempfile.mkdtemp(prefix="piperack-docker-user-", dir="/tmp"))
    try:
        holder.chmod(0o755)
        venv = holder / "venv"
        subprocess.run([*kitlib.uv(), "venv", "--quiet", "--python", python, str(venv)], check=True)
        kitlib.install_piperack(venv, wheelhouse, with_deps=True)
        root = holder / built["root"].name
        shutil.copytree(built["root"], root, symlinks=True, ignore=shutil.ignore_patterns("data", ".docker"))
        for path in [root, *root.rglob("*")]:
            os.chown(path, uid, gid, follow_symlinks=False)
        env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
        env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", HOME=str(root), PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run(
            [
                str(venv / "bin" / "invoke"),
                "docker-run",
                "--tag",
                built["tag"],
                "--network",
                "none",
                "--pipeline",
                "ingest",
            ],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            user=uid,
            group=gid,
            extra_groups=[_docker_socket_gid()],
        )
        assert proc.returncode == 0, _output(proc)
        for path in (root / "data" / "ingest.duckdb", root / "data" / "01_raw"):
            assert (path.stat().st_uid, path.stat().st_gid) == (uid, gid), path
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def test_conf_local_is_mounted_read_only_and_a_failing_pipeline_fails_the_task(built, run_invoke):
    root, tag = built["root"], built["tag"]
    override = root / "conf" / "local" / "parameters" / "ingest.yml"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text("source: samples/no-such-file.csv\n")
    try:
        proc = run_invoke(root, "docker-run", "--tag", tag, "--network", "none", "--pipeline", "ingest")
        assert proc.returncode == 1, _output(proc)  # the runner's exit code, through the container
        assert (
            "error: pipeline 'ingest' failed: cannot read samples/no-such-file.csv: No such file or directory "
            "(set PIPERACK_DEBUG=1 for the traceback)"
        ) in (proc.stdout + proc.stderr).splitlines(), _output(proc)
    finally:
        override.unlink()
    proc = run_invoke(
        root,
        "docker-cmd",
        "--tag",
        tag,
        "--network",
        "none",
        "--",
        "sh",
        "-c",
        "touch conf/local/x 2>/dev/null && echo writable || echo read-only",
    )
    assert proc.returncode == 0 and proc.stdout == "read-only\n", _output(proc)
    # The container's exit code is the task's.
    proc = run_invoke(
        root,
        "docker-cmd",
        "--tag",
        tag,
        "--network",
        "none",
        "--",
        "python",
        "-c",
        "import sys; print('a b'); sys.exit(7)",
    )
    assert proc.returncode == 7 and proc.stdout == "a b\n", _output(proc)


def test_code_change_rebuilds_only_the_project_layer(built, run_invoke):
    root, tag = built["root"], built["tag"]
    before = _layers(tag)
    marker = f"rebuilt-{uuid.uuid4().hex[:8]}"
    _change_code(root, marker)

    proc = run_invoke(root, "docker-build", "--tag", tag, "--base-image", built["base"], timeout=BUILD_TIMEOUT)
    built["images"].add(_docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip())
    assert proc.returncode == 0, _output(proc)
    assert [line for line in proc.stdout.splitlines() if line.startswith("wheelhouse ")] == [
        f"wheelhouse .docker/wheelhouse/ is up to date (Python {_image_python(built['base'])})"
    ], _output(proc)
    # docker's own report: the dependency install step came from the cache, and no RUN step ran
    # at all (no pip, no build backend, no container): the code is one COPY.
    assert _dependency_step_cached(proc.stdout + proc.stderr), _output(proc)
    assert _no_step_ran(proc.stdout + proc.stderr), _output(proc)

    after = _layers(tag)
    assert len(after) == len(before)
    assert after[:-1] == before[:-1], "a layer below the project layer was rebuilt"
    assert after[-1] != before[-1], "the project layer did not change"
    # The rebuilt image runs the changed code, by the image's own command.
    proc = run_invoke(root, "docker-run", "--tag", tag, "--network", "none", "--pipeline", "ingest")
    assert proc.returncode == 0 and marker in proc.stdout, _output(proc)


@pytest.mark.parametrize("args", [("docker-build",), ("docker-run",), ("docker-cmd", "--", "true")])
def test_no_engine_gives_one_clear_line_and_changes_nothing(project_copy, run_invoke, tree_hash, args):
    before = tree_hash(project_copy)
    proc = run_invoke(project_copy, *args, env={"DOCKER_HOST": "unix:///nonexistent/piperack/docker.sock"})
    assert proc.returncode == 1, _output(proc)
    assert proc.stderr.strip().splitlines() == [
        "error: no Docker engine answers; start one (Docker Desktop; `sudo systemctl start docker`; "
        "or `sudo dockerd --bridge=none --iptables=false &`) and retry"
    ], _output(proc)
    assert "Traceback" not in proc.stderr
    assert tree_hash(project_copy) == before


def test_missing_base_image_is_one_clear_line_and_changes_nothing(engine, project_copy, run_invoke, tree_hash):
    before = tree_hash(project_copy)
    proc = run_invoke(project_copy, "docker-build", "--base-image", "piperack-test/no-such-image:0")
    assert proc.returncode == 1, _output(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, _output(proc)
    assert re.fullmatch(  # the reason in brackets is the engine's own
        r"error: base image 'piperack-test/no-such-image:0' is not in the local engine and could not be pulled "
        r"\(.+\); pass --base-image with a local image \(see `docker images`\)",
        errors[0],
    ), errors[0]
    assert "Traceback" not in proc.stderr
    assert tree_hash(project_copy) == before


def test_wheelhouse_is_reused_and_refreshed_when_requirements_change(tmp_path):
    """A real pip download (no engine needed): reused while requirements.txt is unchanged,
    replaced as a whole when it changes, for the image's Python rather than the host's."""

    from piperack import docker

    class Project:
        root = tmp_path
        pyproject = tmp_path / "pyproject.toml"
        pyproject_data = {"build-system": {"requires": []}}

    image_platform = docker.ImagePlatform(
        python="3.12", implementation="cpython", machine="x86_64", libc="glibc", libc_version="2.36"
    )
    (tmp_path / "requirements.txt").write_text("pyyaml==6.0.2\n")
    house, downloaded = docker.ensure_wheelhouse(Project, image_platform)
    assert downloaded
    first = sorted(p.name for p in house.glob("*.whl"))
    assert len(first) == 1 and first[0].lower().startswith("pyyaml-6.0.2-cp312-cp312-manylinux"), first
    assert docker.ensure_wheelhouse(Project, image_platform) == (house, False)

    (tmp_path / "requirements.txt").write_text("pyyaml==6.0.3\n")
    house, downloaded = docker.ensure_wheelhouse(Project, image_platform)
    assert downloaded
    second = sorted(p.name for p in house.glob("*.whl"))
    assert len(second) == 1 and second[0].lower().startswith("pyyaml-6.0.3-cp312-cp312-manylinux"), second
    assert sorted(p.name for p in tmp_path.joinpath(".docker").iterdir()) == ["wheelhouse"]  # no temp folders left

    (tmp_path / "requirements.txt").write_text("pyyaml==0.0.0.404\n")
    with pytest.raises(
        docker.PiperackError,
        match=re.escape(
            "pip download for the image (Python 3.12, x86_64) failed: "
            "ERROR: No matching distribution found for pyyaml==0.0.0.404"
        )
        + "$",
    ):
        docker.ensure_wheelhouse(Project, image_platform)
    assert sorted(p.name for p in house.glob("*.whl")) == second  # a failed refresh keeps the old wheelhouse


def _buildkit_client(tmp_path: Path) -> Path:
    """A folder whose `docker` builds with BuildKit: the PATH's docker if it has buildx, else the
    docker.io client (its BuildKit needs no plugin). Users mostly build with BuildKit."""
    folder = tmp_path / "buildkit-bin"
    folder.mkdir()
    candidates = [shutil.which("docker"), "/usr/bin/docker"]
    for client in filter(None, candidates):
        has_buildx = subprocess.run([client, "buildx", "version"], capture_output=True).returncode == 0
        legacy_only = subprocess.run(
            [client, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True
        ).stdout.strip().split(".")[0] not in {"19", "20", "21", "22"}
        if has_buildx or not legacy_only:
            (folder / "docker").symlink_to(client)
            return folder
    _unavailable("no docker client here builds with BuildKit (neither buildx nor a docker.io client)")


def test_buildkit_builds_offline_and_reuses_the_dependency_layer(engine, base_image, project, run_invoke, tmp_path):
    root = tmp_path / project.name
    shutil.copytree(project, root, symlinks=True)
    # Code no earlier build saw. When `--no-cache` builds (the benchmark's) left several cache
    # records for the same steps, BuildKit takes the chain that caches the most steps, and else
    # the newest: a first build of code some older chain already holds would take that chain and
    # the rebuild the newest, so their lower layers would differ though every step came from the
    # cache.
    nodes = root / "src" / _package(root) / "pipelines" / "ingest" / "nodes.py"
    nodes.write_text(nodes.read_text() + f"# BuildKit test {uuid.uuid4().hex}\n")
    client = _buildkit_client(tmp_path)
    env = {"DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain", "PATH": f"{client}{os.pathsep}{os.environ['PATH']}"}
    tag = f"piperack-test-bk-{uuid.uuid4().hex[:10]}:latest"
    images = set()
    try:
        proc = run_invoke(
            root, "docker-build", "--tag", tag, "--base-image", base_image, env=env, timeout=BUILD_TIMEOUT
        )
        assert proc.returncode == 0, _output(proc)
        assert re.search(r"^#\d+ \[deps", proc.stdout + proc.stderr, re.M), "not a BuildKit build:\n" + _output(proc)
        images.add(_docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip())
        before = _layers(tag)
        marker = f"rebuilt-bk-{uuid.uuid4().hex[:8]}"
        _change_code(root, marker)
        proc = run_invoke(
            root, "docker-build", "--tag", tag, "--base-image", base_image, env=env, timeout=BUILD_TIMEOUT
        )
        images.add(_docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip())
        assert proc.returncode == 0, _output(proc)
        assert _dependency_step_cached(proc.stdout + proc.stderr), _output(proc)
        assert _no_step_ran(proc.stdout + proc.stderr), _output(proc)
        after = _layers(tag)
        assert after[:-1] == before[:-1] and after[-1] != before[-1]
        proc = run_invoke(root, "docker-run", "--tag", tag, "--network", "none", "--pipeline", "ingest", env=env)
        assert proc.returncode == 0 and marker in proc.stdout, _output(proc)
        assert (root / "data" / "ingest.duckdb").stat().st_uid == os.getuid()
    finally:
        for image in images:
            _docker("rmi", "--force", image, check=False)


def test_dockerignore_keeps_data_secrets_git_venvs_and_dist_out_of_the_context(
    engine, base_image, project_copy, tmp_path
):
    root = project_copy
    planted = [
        "data/big.csv",
        "conf/local/credentials.yml",
        ".git/config",
        ".venv/bin/python",
        "venv/x",
        "dist/pkg-0.1.0.tar.gz",
        "src/pkg.egg-info/PKG-INFO",
        "src/__pycache__/x.pyc",
    ]
    for rel in planted + [".docker/wheelhouse/kept.whl"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {base_image}\nCOPY . /context/\n")
    tag = f"piperack-test-context-{uuid.uuid4().hex[:10]}:latest"
    try:
        _docker("build", "--network", "none", "-q", "-f", str(dockerfile), "-t", tag, str(root))
        listed = set(_docker("run", "--rm", "--network", "none", tag, "find", "/context").stdout.split())
    finally:
        _docker("rmi", "--force", tag, check=False)
    assert "/context/.docker/wheelhouse/kept.whl" in listed  # the image's dependencies come from here
    assert "/context/conf/base" in listed and "/context/src" in listed
    leaked = [rel for rel in planted if f"/context/{rel}" in listed]
    assert not leaked, leaked
