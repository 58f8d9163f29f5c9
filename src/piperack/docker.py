"""docker-build / docker-run / docker-cmd: the project's image on a local Docker engine.

The image installs its dependencies from a wheelhouse (``.docker/wheelhouse/``) that docker-build
fills on the host first, with wheels for the *image's* Python version and platform (asked from the
base image itself). The build therefore needs no network, the dependency layers depend on
requirements.txt and the wheelhouse only, and a code change rebuilds the project layer alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .docker_engine import CONTAINER_ROOT, check_engine, default_tag, docker_exe
from .docker_engine import image_id as _image_id  # its name here, where image_id is a variable
from .errors import PiperackError
from .options import RUN_ENV
from .yamlload import load_json

DOCKERFILE = Path("docker") / "Dockerfile"
STATE_DIR = Path(".docker")
WHEELHOUSE = STATE_DIR / "wheelhouse"
STAMP = ".piperack-wheelhouse.json"
DEFAULT_BUILD_REQUIRES = ["setuptools>=40.8.0"]
FALLBACK_UID = 1000

# Run inside the base image: what wheels can it install?
PROBE = r"""
import json, platform, sys, sysconfig
libc, ver = platform.libc_ver()
print(json.dumps({
    "python": "%d.%d" % sys.version_info[:2],
    "implementation": sys.implementation.name,
    "machine": platform.machine(),
    "libc": libc,
    "libc_version": ver,
    "musl": "musl" in (sysconfig.get_config_var("HOST_GNU_TYPE") or ""),
}))
"""


# --- the engine -----------------------------------------------------------------------------


def find_image(image: str) -> tuple[str, str]:
    """(the docker executable, ``image``'s id or "" when the engine does not have it).

    One `docker image inspect`: an engine that answers it is up, so `docker version` is asked only
    when it fails, to tell a missing image from an engine that does not answer (one clear line)."""
    exe = docker_exe()
    image_id = _image_id(exe, image)
    if not image_id:
        check_engine()
    return exe, image_id


# --- defaults -------------------------------------------------------------------------------


def dockerfile_base_image(project) -> str:
    """The default of ``ARG BASE_IMAGE`` in docker/Dockerfile."""
    path = project.root / DOCKERFILE
    if not path.is_file():
        raise PiperackError(f"{DOCKERFILE} not found in {project.root}")
    match = re.search(r"^\s*ARG\s+BASE_IMAGE\s*=\s*(\S+)", path.read_text(encoding="utf-8"), re.M)
    if not match:
        raise PiperackError(f"{DOCKERFILE}: no `ARG BASE_IMAGE=<image>` line; pass --base-image")
    return match.group(1).strip("\"'")


def host_ids() -> tuple[int, int]:
    """The host user's uid and gid (1000 where the platform has none, e.g. Windows)."""
    getuid = getattr(os, "getuid", None)
    getgid = getattr(os, "getgid", None)
    return (getuid() if getuid else FALLBACK_UID, getgid() if getgid else FALLBACK_UID)


def image_ids(uid: int | None, gid: int | None) -> tuple[int, int]:
    """The image user's uid/gid: the host's by default, but never root (0 becomes 1000)."""
    host_uid, host_gid = host_ids()
    uid = _id("uid", uid)
    gid = _id("gid", gid)
    if uid is None:
        uid = host_uid or FALLBACK_UID
    if gid is None:
        gid = host_gid if host_uid else FALLBACK_UID
    if uid == 0:
        raise PiperackError("--uid 0 is refused: the image runs as a non-root user")
    return uid, gid


def _id(name: str, value) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise PiperackError(f"--{name} must be a non-negative integer, got {value!r}")
    return number


def parse_build_args(items) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise PiperackError(f"invalid --build-arg {item!r}: expected KEY=VALUE")
        out.append((key, value))
    return out


def split_docker_args(text: str | None) -> list[str]:
    try:
        return shlex.split(text or "")
    except ValueError as exc:
        raise PiperackError(f"invalid --docker-args {text!r}: {exc}") from None


# --- the base image and the wheelhouse --------------------------------------------------------


# The pre-PEP 600 manylinux names: alias -> (glibc 2.x minor it stands for, architectures).
LEGACY_MANYLINUX = {
    "manylinux2014": (17, {"x86_64", "i686", "aarch64", "ppc64le", "s390x", "armv7l"}),
    "manylinux2010": (12, {"x86_64", "i686"}),
    "manylinux1": (5, {"x86_64", "i686"}),
}


@dataclass(frozen=True)
class ImagePlatform:
    """What the base image can install: its Python and platform."""

    python: str  # "3.11"
    implementation: str  # "cpython"
    machine: str  # "x86_64"
    libc: str  # "glibc" or "musl"
    libc_version: str  # "2.36"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    def platforms(self) -> list[str]:
        """pip --platform values, newest first: every manylinux/musllinux tag the image accepts."""
        arch = self.machine
        try:
            major, minor = (int(x) for x in self.libc_version.split(".")[:2])
        except ValueError:
            raise PiperackError(
                f"cannot tell the base image's C library version ({self.libc} {self.libc_version!r})"
            ) from None
        if self.libc == "musl":
            return [f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)]
        tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
        for alias, (need, arches) in LEGACY_MANYLINUX.items():
            if major == 2 and minor >= need and arch in arches:
                tags.append(f"{alias}_{arch}")
        return tags


def probe_base_image(
    exe: str, base_image: str, cache: Path | None = None, image_id: str | None = None
) -> ImagePlatform:
    """Ask the base image for its Python version and platform (cached by image id; ``image_id``
    when the caller already looked it up, "" for an image the engine does not have)."""
    if image_id is None:
        image_id = _image_id(exe, base_image)
    cached = {}
    if cache and image_id and cache.is_file():
        try:
            cached = load_json(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cached = {}
        if image_id in cached:
            return ImagePlatform(**cached[image_id])
    if not image_id:
        from . import ui

        ui.info(f"pulling base image {base_image}")
        pull = subprocess.run([exe, "pull", base_image], stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        if pull.returncode != 0:
            lines = [line_.strip() for line_ in pull.stderr.splitlines() if line_.strip()]
            reason = next((line_ for line_ in lines if "rror" in line_), lines[0] if lines else "no output")
            raise PiperackError(
                f"base image {base_image!r} is not in the local engine and could not be pulled ({reason}); "
                "pass --base-image with a local image (see `docker images`)"
            )
        image_id = _image_id(exe, base_image)
    proc = subprocess.run(
        [exe, "run", "--rm", "--network", "none", "--entrypoint", "python3", base_image, "-c", PROBE],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PiperackError(f"cannot run python3 in base image {base_image!r}: {last}")
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise PiperackError(f"base image {base_image!r}: unexpected answer from python3: {proc.stdout!r}") from None
    if info.get("implementation") != "cpython":
        raise PiperackError(f"base image {base_image!r} runs {info.get('implementation')}; CPython is needed")
    libc = "musl" if info.get("musl") or not info.get("libc") else "glibc"
    image_platform = ImagePlatform(
        python=info["python"],
        implementation="cpython",
        machine=info["machine"],
        libc=libc,
        libc_version=info.get("libc_version") or "",
    )
    if libc == "musl" and not image_platform.libc_version:
        raise PiperackError(f"base image {base_image!r} uses musl libc; use a glibc (Debian/Ubuntu-based) image")
    image_id = image_id or _image_id(exe, base_image)
    if cache and image_id:
        cached[image_id] = image_platform.__dict__
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(cached, indent=1, sort_keys=True), encoding="utf-8")
    return image_platform


def check_requires_python(project, image_platform: ImagePlatform, base_image: str) -> None:
    """The base image's Python must satisfy [project] requires-python (else pip fails deep in the build)."""
    spec = project.pyproject_data.get("project", {}).get("requires-python")
    if not spec:
        return
    simple = re.fullmatch(r"\s*>=\s*(\d+)\.(\d+)\s*", spec)
    if simple:  # the usual ">=3.11", decided without importing packaging (every rebuild asks)
        fits = tuple(int(x) for x in image_platform.python.split(".")[:2]) >= (int(simple[1]), int(simple[2]))
    else:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            allowed = SpecifierSet(spec)
        except InvalidSpecifier:
            raise PiperackError(
                f"{project.pyproject}: [project] requires-python {spec!r} is not a valid specifier"
            ) from None
        fits = allowed.contains(image_platform.python + ".0", prereleases=True) or allowed.contains(
            image_platform.python + ".99"
        )
    if not fits:
        raise PiperackError(
            f"base image {base_image!r} has Python {image_platform.python}, but pyproject.toml requires-python is "
            f"{spec!r}; pick a matching base image (--base-image python:<version>-slim)"
        )


def build_requires(project) -> list[str]:
    build_system = project.pyproject_data.get("build-system", {})
    requires = build_system.get("requires", DEFAULT_BUILD_REQUIRES)
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise PiperackError(f"{project.pyproject}: [build-system] requires must be a list of strings")
    return list(requires)


def wheelhouse_key(requirements: bytes, build_reqs: list[str], image_platform: ImagePlatform) -> str:
    digest = hashlib.sha256()
    digest.update(requirements)
    digest.update(
        json.dumps([build_reqs, image_platform.__dict__, image_platform.platforms()], sort_keys=True).encode()
    )
    return digest.hexdigest()


def pip_download_command(
    requirements: Path, build_reqs: list[str], image_platform: ImagePlatform, dest: Path
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        image_platform.python,
        "--implementation",
        "cp",
        "--abi",
        image_platform.abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
        "--dest",
        str(dest),
    ]
    for platform in image_platform.platforms():
        cmd += ["--platform", platform]
    cmd += ["-r", str(requirements), *build_reqs]
    return cmd


def ensure_wheelhouse(project, image_platform: ImagePlatform, refresh: bool = False) -> tuple[Path, bool]:
    """Fill .docker/wheelhouse/ for ``image_platform`` unless it already matches requirements.txt,
    the build requirements and that platform. Returns (path, downloaded)."""
    from . import ui

    requirements = project.root / "requirements.txt"
    if not requirements.is_file():
        raise PiperackError(
            f"{requirements} not found: the image installs its pinned dependencies from it (invoke build-reqs)"
        )
    build_reqs = build_requires(project)
    key = wheelhouse_key(requirements.read_bytes(), build_reqs, image_platform)
    house = project.root / WHEELHOUSE
    stamp = house / STAMP
    if not refresh and stamp.is_file():
        try:
            if load_json(stamp.read_text(encoding="utf-8")).get("key") == key:
                ui.info(
                    f"wheelhouse {WHEELHOUSE.as_posix()}/ is up to date "
                    f"(Python {image_platform.python}, {image_platform.machine})"
                )
                return house, False
        except (OSError, ValueError):
            pass
    house.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="wheelhouse.", dir=house.parent))
    try:
        ui.info(
            f"filling {WHEELHOUSE.as_posix()}/ for Python {image_platform.python} "
            f"on {image_platform.platforms()[0]} (pip download)"
        )
        proc = ui.run_streaming(
            pip_download_command(requirements, build_reqs, image_platform, tmp), "pip download", cwd=project.root
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
            sys.stderr.write(tail + "\n")
            errors = [line_ for line_ in reversed(proc.stdout.splitlines()) if "ERROR" in line_]
            last = errors[0] if errors else "see the output above"
            raise PiperackError(
                f"pip download for the image (Python {image_platform.python}, {image_platform.machine}) "
                f"failed: {last.strip()}"
            )
        (tmp / STAMP).write_text(
            json.dumps(
                {"key": key, "python": image_platform.python, "platforms": image_platform.platforms()}, indent=1
            ),
            encoding="utf-8",
        )
        old = house.with_name(house.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if house.exists():
            house.rename(old)
        tmp.rename(house)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return house, True


# --- the verbs ------------------------------------------------------------------------------


def build_command(
    exe: str,
    project,
    tag: str,
    base_image: str,
    uid: int,
    gid: int,
    build_args: list[tuple[str, str]],
    no_cache: bool,
    docker_args: list[str],
) -> list[str]:
    cmd = [
        exe,
        "build",
        "--file",
        str(project.root / DOCKERFILE),
        "--tag",
        tag,
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"UID={uid}",
        "--build-arg",
        f"GID={gid}",
    ]
    for key, value in build_args:
        cmd += ["--build-arg", f"{key}={value}"]
    if no_cache:
        cmd.append("--no-cache")
    # The build needs no network (the wheelhouse is local): enforce it. Docker takes the last
    # --network, so --docker-args='--network default' gives RUN steps the network back.
    cmd += ["--network", "none"]
    return cmd + docker_args + [str(project.root)]


def build(
    project,
    tag: str | None = None,
    base_image: str | None = None,
    uid: int | None = None,
    gid: int | None = None,
    build_args=None,
    no_cache: bool = False,
    docker_args: str | None = None,
    refresh_wheelhouse: bool = False,
) -> int:
    """Fill the wheelhouse, then `docker build` (output streamed). Returns docker's exit code."""
    from . import ui

    extra = split_docker_args(docker_args)
    pairs = parse_build_args(build_args)
    for key, value in pairs:  # --build-arg BASE_IMAGE=… is the same as --base-image
        if key == "BASE_IMAGE" and not base_image:
            base_image = value
    pairs = [(k, v) for k, v in pairs if k not in {"BASE_IMAGE", "UID", "GID"}]
    tag = tag or default_tag(project)
    base_image = base_image or dockerfile_base_image(project)
    uid, gid = image_ids(uid, gid)
    exe, image_id = find_image(base_image)
    image_platform = probe_base_image(
        exe, base_image, cache=project.root / STATE_DIR / "base-images.json", image_id=image_id
    )
    check_requires_python(project, image_platform, base_image)
    ensure_wheelhouse(project, image_platform, refresh=refresh_wheelhouse or no_cache)
    cmd = build_command(exe, project, tag, base_image, uid, gid, pairs, no_cache, extra)
    ui.info(f"building {tag} on {base_image} (user {uid}:{gid})")
    code = subprocess.run(cmd, cwd=project.root).returncode
    if code == 0:
        ui.info(f"built {tag}; run it with: invoke docker-run --tag {tag}")
    return code


def run_command(
    exe: str, project, tag: str, command: list[str], network: str | None, docker_args: list[str], tty: bool
) -> list[str]:
    uid, gid = host_ids()
    root = project.root
    cmd = [
        exe,
        "run",
        "--rm",
        "--user",
        f"{uid}:{gid}",
        "--volume",
        f"{root / 'data'}:{CONTAINER_ROOT}/data:rw",
        "--volume",
        f"{root / 'conf' / 'local'}:{CONTAINER_ROOT}/conf/local:ro",
    ]
    logs = root / "logs"
    if logs.is_dir() and not logs.is_symlink():
        # the run's log and its line in logs/runs.jsonl land in the project, as for `invoke run`;
        # a linked logs/ is never mounted (the container then logs inside itself)
        cmd += ["--volume", f"{logs}:{CONTAINER_ROOT}/logs:rw"]
    if tty:
        cmd.append("-it")
    if network:
        cmd += ["--network", network]
    return cmd + docker_args + [tag, *command]


def _container(project, command: list[str], tag: str | None, network: str | None, docker_args: str | None) -> int:
    extra = split_docker_args(docker_args)
    tag = tag or default_tag(project)
    exe, image_id = find_image(tag)
    if not image_id:
        raise PiperackError(f"no image {tag!r} in the local engine; build it first: invoke docker-build --tag {tag}")
    # Mount points must exist on the host, owned by the user (docker would create them as root).
    (project.root / "data").mkdir(exist_ok=True)
    (project.root / "conf" / "local").mkdir(parents=True, exist_ok=True)
    if not (project.root / "logs").is_symlink():
        (project.root / "logs").mkdir(exist_ok=True)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    return subprocess.run(run_command(exe, project, tag, command, network, extra, tty), cwd=project.root).returncode


def run(
    project,
    pipelines=None,
    env: str | None = None,
    tag: str | None = None,
    network: str | None = None,
    docker_args: str | None = None,
) -> int:
    """Run the project's pipelines in a container; returns the container's exit code."""
    command = ["python", "-m", project.package, "run"]
    for name in pipelines or []:
        command += ["--pipeline", name]
    if env:
        project.env_dir(env, must_exist=env != RUN_ENV)  # names only conf/<env>
        command += ["--env", env]
    return _container(project, command, tag, network, docker_args)


def cmd(
    project, command: list[str], tag: str | None = None, network: str | None = None, docker_args: str | None = None
) -> int:
    """Run any command in the project's image (same mounts and user as docker-run)."""
    if not command:
        raise PiperackError("no command given: invoke docker-cmd -- CMD [ARGS…]")
    return _container(project, list(command), tag, network, docker_args)
