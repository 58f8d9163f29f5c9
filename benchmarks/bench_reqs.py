"""Benchmark of `invoke build-reqs`'s resolvers: uv vs pip-tools' pip-compile.

Compiles two inputs with each resolver, with exactly the commands build-reqs runs
(piperack.reqs.resolver_command), against PyPI only:
- the generated project's requirements.in (baked from the template),
- benchmarks/reqs/large.in (about 40 top-level packages of a data-pipeline project);
cold (a fresh, empty cache directory: uv's cache, pip's and pip-tools' caches) and warm (the same
cache again, median of several runs), in the same run. Also checks that both resolvers pin the
same versions. Results: the "## invoke build-reqs" section of docs/benchmarks.md.

Run: bash scripts/kit.sh bench --name reqs   (or: python -m benchmarks.bench_reqs [--warm-runs N])
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import write_section
from piperack import buildreqs as reqs
from piperack import tools

KIT = Path(__file__).resolve().parents[1]

SECTION = "## invoke build-reqs"
PYPI = "https://pypi.org/simple"
COMMAND = "bash scripts/kit.sh bench --name reqs"


def base_env() -> dict:
    env = dict(os.environ)
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,  # pip-compile sees PyPI only, like uv
            "PIP_INDEX_URL": PYPI,
            "PIP_EXTRA_INDEX_URL": "",
            "PIP_FIND_LINKS": "",
            "UV_DEFAULT_INDEX": PYPI,
            "UV_NO_CONFIG": "1",
        }
    )
    for key in ("UV_CACHE_DIR", "PIP_CACHE_DIR", "PIP_TOOLS_CACHE_DIR", "XDG_CACHE_HOME"):
        env.pop(key, None)
    return env


def compile_once(resolver: str, in_file: Path, cache: Path, work: Path, extra=()) -> tuple[float, str]:
    """Seconds to compile in_file (no previous pins) with a given cache directory; the output."""
    base = tools.find_uv() if resolver == "uv" else tools.find_pip_compile()
    if not base:
        raise SystemExit(f"error: {resolver} is not installed in {sys.executable}'s environment")
    out = work / f"out-{resolver}.txt"
    out.unlink(missing_ok=True)
    cmd = reqs.resolver_command(resolver, base, in_file.name, out.name, extra_args=extra)
    env = base_env()
    if resolver == "uv":
        env["UV_CACHE_DIR"] = str(cache / "uv")
    else:
        cmd += ["--cache-dir", str(cache / "pip-tools")]
        env["PIP_CACHE_DIR"] = str(cache / "pip")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"error: {resolver} failed on {in_file}:\n{reqs.explain(proc.stderr + proc.stdout)}")
    return seconds, out.read_text()


def bench_input(label: str, in_text: str, warm_runs: int, tmp: Path) -> list[dict]:
    work = tmp / "".join(ch if ch.isalnum() else "-" for ch in label)
    work.mkdir()
    in_file = work / "requirements.in"
    in_file.write_text(in_text)
    top = sum(1 for line in in_text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    rows, outputs = [], {}
    for resolver in ("uv", "pip-tools"):
        cache = tmp / f"cache-{label}-{resolver}"
        cold, text = compile_once(resolver, in_file, cache, work)
        warm = [compile_once(resolver, in_file, cache, work)[0] for _ in range(warm_runs)]
        offline = None
        if resolver == "uv":  # index pages from the cache, without revalidation
            offline = statistics.median(
                compile_once(resolver, in_file, cache, work, ["--offline"])[0] for _ in range(warm_runs)
            )
        outputs[resolver] = reqs.pins(text)
        rows.append(
            {
                "input": label,
                "top": top,
                "pinned": len(outputs[resolver]),
                "resolver": resolver,
                "cold": cold,
                "warm": statistics.median(warm),
                "warm_all": warm,
                "offline": offline,
            }
        )
        print(
            f"{label:<22} {resolver:<9} cold {cold:7.2f}s  warm {statistics.median(warm):6.2f}s "
            f"(runs: {', '.join(f'{w:.2f}' for w in warm)})"
            + (f"  warm --offline {offline:.2f}s" if offline is not None else ""),
            flush=True,
        )
    same = outputs["uv"] == outputs["pip-tools"]
    for row in rows:
        row["same_pins"] = same
    return rows


def tool_versions() -> str:
    uv = subprocess.run([*tools.find_uv(), "--version"], capture_output=True, text=True).stdout.strip()
    pc = subprocess.run([*tools.find_pip_compile(), "--version"], capture_output=True, text=True).stdout.strip()
    return f"{uv}; {pc.replace(', version', '')}"


def index_caching() -> str:
    """What the index says about caching its pages (it decides what a warm run must re-fetch)."""
    import urllib.request

    req = urllib.request.Request(f"{PYPI}/pandas/", method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            headers = {k.lower(): v for k, v in resp.headers.items()}
    except OSError as exc:
        return f"(could not check the index's cache headers: {exc})"
    found = [f"{k}: {headers[k]}" for k in ("cache-control", "etag", "last-modified") if k in headers]
    if found:
        return f"The index answers with {'; '.join(found)}."
    return (
        "This machine's index endpoint answers without Cache-Control, ETag or Last-Modified headers "
        f"(`curl -sI {PYPI}/pandas/`), so every warm run of either tool downloads every index page "
        "again: warm times here are mostly network. *Warm, index from cache* is uv with `--offline` on "
        "the warm cache, i.e. the resolver's own time when index pages are fresh in the cache "
        "(pip-compile has no equivalent offline mode)."
    )


def render(rows: list[dict], warm_runs: int, load: tuple) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        f"Command: `{COMMAND}` (runs `python -m benchmarks.bench_reqs`). Measured {now} on this machine "
        f"({os.cpu_count()} cores, Python {platform.python_version()}, {tool_versions()}), resolving against "
        "PyPI over the network. Each resolver runs the exact command `invoke build-reqs` runs "
        "(`piperack.reqs.resolver_command`), with no previous pins. *Cold*: a fresh, empty cache directory "
        "(uv's cache; pip's and pip-tools' caches), one run. *Warm*: the same cache again, median of "
        f"{warm_runs} runs. Load average (1 min) before/after the run: {load[0]:.1f} / {load[1]:.1f} "
        "(other work shares the 2 cores).",
        "",
        index_caching(),
        "",
        "| input | top-level | pinned | resolver | cold (s) | warm (s) | warm, index from cache (s) | same pins as the other resolver |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['input']} | {r['top']} | {r['pinned']} | {r['resolver']} | {r['cold']:.2f} | "
            f"{r['warm']:.2f} | {'n/a' if r['offline'] is None else format(r['offline'], '.2f')} | "
            f"{'yes' if r['same_pins'] else 'NO'} |"
        )
    lines += [
        "",
        "| input | uv speed-up, cold | uv speed-up, warm (goal ≥ 10x) | uv index from cache vs pip-compile warm |",
        "|---|---:|---:|---:|",
    ]
    verdicts = []
    for label in dict.fromkeys(r["input"] for r in rows):
        uv = next(r for r in rows if r["input"] == label and r["resolver"] == "uv")
        pc = next(r for r in rows if r["input"] == label and r["resolver"] == "pip-tools")
        cold, warm = pc["cold"] / uv["cold"], pc["warm"] / uv["warm"]
        verdicts.append(warm >= 10)
        lines.append(f"| {label} | {cold:.1f}x | {warm:.1f}x | {pc['warm'] / uv['offline']:.0f}x |")
    lines += [
        "",
        "Goal (uv at least 10x faster than pip-compile, warm): "
        + (
            "met on every input."
            if all(verdicts)
            else "NOT met on every input (see the table). The last column is not like for like: uv skips the "
            "network there while pip-compile does not (it has no offline mode, and with an index that "
            "allowed caching it would skip some network too); it bounds uv's own resolution time."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    from scripts import kitlib

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-reqs-") as tmp_name:
        tmp = Path(tmp_name)
        project = kitlib.bake(tmp / "bake")
        rows = bench_input("generated project", (project / "requirements.in").read_text(), args.warm_runs, tmp)
        rows += bench_input(
            "large.in (~40 packages)", (KIT / "benchmarks" / "reqs" / "large.in").read_text(), args.warm_runs, tmp
        )
    text = render(rows, args.warm_runs, (load_before, os.getloadavg()[0]))
    print()
    print(text)
    if not args.no_write:
        write_section("reqs", text)


if __name__ == "__main__":
    main()
