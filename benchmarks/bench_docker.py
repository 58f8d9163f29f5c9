"""docker-build of a generated project: cold build, code-only rebuild, image size — against the
seed tutorial's Dockerfile (COPY requirements.txt; RUN pip install; COPY . .) on the same base.

- cold: fresh bake, empty wheelhouse and an empty pip cache (so the wheels come from PyPI), then
  `invoke docker-build --no-cache`; split into the wheelhouse phase and `docker build` itself;
- code-only rebuild: one line of pipeline code changed, `invoke docker-build` (median of --runs);
- no-change rebuild: `invoke docker-build` again with nothing changed;
- the seed's Dockerfile, adapted only as far as this offline machine needs (wheels from the same
  wheelhouse, a venv because the offline base has no pip), built from the same project without
  a .dockerignore, as the tutorial has none: cold (--no-cache) and code-only rebuild.
Needs a Docker engine (scripts/docker-engine.sh start) and the offline base image
(PIPERACK_TEST_BASE_IMAGE, else scripts/build-base-image.sh builds or reuses it).
Usage: python benchmarks/bench_docker.py [--runs 3] [--no-write]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KIT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(KIT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import kitlib  # noqa: E402
from report import write_section  # noqa: E402

SEED_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
WORKDIR /app
COPY requirements.txt .
# adaptation: no network in this build, and the offline base has no pip
COPY .docker/wheelhouse/ /wheelhouse/
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheelhouse -r requirements.txt
COPY . .
ENV PYTHONPATH=/app/src
CMD ["/opt/venv/bin/python", "-m", "{pkg}", "run"]
"""


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


def timed(cmd: list[str], cwd: Path, env: dict, marker: str | None = None) -> tuple[float, float | None, str]:
    """(total seconds, seconds until a line containing marker appeared, output)."""
    started = time.perf_counter()
    seen = None
    lines = []
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        lines.append(line)
        if marker and seen is None and marker in line:
            seen = time.perf_counter() - started
    code = proc.wait()
    total = time.perf_counter() - started
    print(f"{total:7.1f} s  {' '.join(cmd[:4])} …", file=sys.stderr, flush=True)
    output = "".join(lines)
    if code:
        sys.stderr.write(output[-3000:])
        raise SystemExit(f"failed ({code}): {' '.join(cmd)}")
    return total, seen, output


def human_bytes(text: str) -> float:
    """docker history's sizes: 0B, 1.24kB, 55.2kB, 230MB, 1.1GB."""
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return 0.0


def touch_code(root: Path, package: str, n: int) -> None:
    nodes = root / "src" / package / "pipelines" / "ingest" / "nodes.py"
    lines = nodes.read_text().splitlines(keepends=True)
    lines[-1] = lines[-1].rstrip("\n") + f"  # bench {n}\n" if not lines[-1].lstrip().startswith("#") else f"# bench {n}\n"
    nodes.write_text("".join(lines))


def base_image() -> str:
    tag = os.environ.get("PIPERACK_TEST_BASE_IMAGE")
    if tag:
        return tag
    return subprocess.run(["bash", str(KIT / "scripts" / "build-base-image.sh")], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if subprocess.run(["docker", "info"], capture_output=True).returncode:
        raise SystemExit("no Docker engine answers: scripts/docker-engine.sh start")
    base = base_image()
    work = Path(tempfile.mkdtemp(prefix="piperack-bench-docker-"))
    tags = []
    try:
        root = kitlib.bake(work / "bake")
        package = "demo_project"
        venv = kitlib.project_venv(root)
        env = kitlib.invoke_env(venv)
        env["PIP_CACHE_DIR"] = str(work / "pip-cache")  # cold: wheels come from PyPI
        invoke = [str(venv / "bin" / "invoke")]
        tag = f"piperack-bench-{os.getpid()}:latest"
        tags.append(tag)
        build = [*invoke, "docker-build", "--tag", tag, "--base-image", base]

        cold, wheel_phase, _ = timed([*build, "--no-cache"], root, env, marker="building ")
        sizes = {p.name: p.stat().st_size for p in (root / ".docker" / "wheelhouse").glob("*.whl")}
        cold_docker, _, _ = timed(["docker", "build", "--no-cache", "--network", "none", "-q", "-f",
                                   "docker/Dockerfile", "-t", tag, "--build-arg", f"BASE_IMAGE={base}", "."], root, env)
        rebuilds = []
        for n in range(args.runs):
            touch_code(root, package, n)
            seconds, _, output = timed(build, root, env)
            assert "up to date" in output
            rebuilds.append(seconds)
        nochange, _, _ = timed(build, root, env)
        image = json.loads(docker("image", "inspect", tag))[0]
        base_size = json.loads(docker("image", "inspect", base))[0]["Size"]
        ours = docker("history", "--format", "{{.Size}}", tag).splitlines()
        ours = ours[: len(ours) - len(docker("history", "--format", "{{.Size}}", base).splitlines())]
        venv_layer = max(ours, key=human_bytes)  # the dependency layer is by far the largest of ours

        # The seed tutorial's Dockerfile on the same base, the same project, the same wheelhouse.
        seed_root = work / "seed" / root.name
        shutil.copytree(root, seed_root, symlinks=True)
        (seed_root / ".dockerignore").unlink()
        (seed_root / "Dockerfile").write_text(SEED_DOCKERFILE.replace("{pkg}", package))
        seed_tag = f"piperack-bench-seed-{os.getpid()}:latest"
        tags.append(seed_tag)
        seed_build = ["docker", "build", "--network", "none", "-t", seed_tag, "--build-arg", f"BASE_IMAGE={base}", "."]
        seed_cold, _, _ = timed([*seed_build[:2], "--no-cache", *seed_build[2:]], seed_root, env)
        seed_rebuilds = []
        for n in range(args.runs):
            touch_code(seed_root, package, n)
            seed_rebuilds.append(timed(seed_build, seed_root, env)[0])
        seed_image = json.loads(docker("image", "inspect", seed_tag))[0]
        seed_user = seed_image["Config"].get("User") or "root"
    finally:
        for t in tags:
            subprocess.run(["docker", "rmi", "--force", t], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    mb = lambda n: f"{n / 1e6:.0f} MB"  # noqa: E731
    rebuild = statistics.median(rebuilds)
    seed_rebuild = statistics.median(seed_rebuilds)
    load = os.getloadavg()[0]
    server = docker("version", "--format", "{{.Server.Version}}")
    body = f"""\
## Docker

`python benchmarks/bench_docker.py --runs {args.runs}` — a freshly baked default project built with
`invoke docker-build --base-image {base}` (the offline base image: Debian bookworm minbase +
python3 + python3-venv, {mb(base_size)}), Docker {server}, legacy builder (no buildx here),
median of {args.runs} code-only rebuilds, 1-minute load average {load:.1f} at the end.

| | piperack `docker-build` | the seed tutorial's Dockerfile |
|---|---:|---:|
| cold build, total (seconds) | {cold:.1f} | {seed_cold:.1f} (wheelhouse already there) |
| … of which wheelhouse fill, `pip download` from PyPI with an empty pip cache | {wheel_phase:.1f} ({len(sizes)} wheels, {mb(sum(sizes.values()))}) | – |
| … `docker build --no-cache` alone | {cold_docker:.1f} | {seed_cold:.1f} |
| code-only rebuild (one line of `nodes.py` changed) | **{rebuild:.1f}** ({", ".join(f"{s:.1f}" for s in rebuilds)}) | {seed_rebuild:.1f} |
| rebuild with nothing changed | {nochange:.1f} | – |
| **code-only rebuild / cold build** | **{100 * rebuild / cold:.1f} %** (of `docker build` alone: {100 * rebuild / cold_docker:.1f} %) | {100 * seed_rebuild / seed_cold:.1f} % |
| final image size | {mb(image["Size"])} (base {mb(base_size)} + venv layer {venv_layer} + project) | {mb(seed_image["Size"])} |
| runs as | `{image["Config"]["User"]}` (non-root; `docker-run` uses your uid:gid) | `{seed_user}` |
| in the image besides the code | conf/, samples/ | everything in the folder: .git, data/, conf/local/ secrets, the wheelhouse, virtualenvs |

Goal: a code-only rebuild under 10% of the cold build —
{"met" if rebuild < 0.1 * cold else "NOT met"} ({100 * rebuild / cold:.1f} % of the cold build,
{100 * rebuild / cold_docker:.1f} % of a no-cache `docker build` with the wheelhouse already filled).
A code-only rebuild re-runs only the project's own install step (pip builds and installs one
small wheel in a container) and adds one small layer; the dependency layers come from the cache.
The seed's Dockerfile also keeps its dependency install above `COPY . .`, so it rebuilds quickly
too ({seed_rebuild:.1f} s: it only copies files and installs nothing), but it needs PyPI during
the build (impossible here without the adaptation), ships the whole folder (data, secrets, .git,
the wheelhouse) and pip, and runs as root. The piperack cold build is slower than the seed's
because its final image copies the virtualenv out of the dependency stage (a multi-stage build
that leaves pip, the wheelhouse and the build backend behind).
"""
    print(body)
    if not args.no_write:
        write_section("docker", body)


if __name__ == "__main__":
    main()
