"""`invoke build-reqs`: compile requirements.in into a pinned requirements.txt.

The resolver is uv (``uv pip compile``), found next to the running Python, then on PATH, then as
``python -m uv``; pip-tools' ``pip-compile`` is the fallback (or ``--resolver pip-tools``). Both
are run so that their outputs are equivalent: exact pins with ``# via`` annotations, extras
stripped, pip/setuptools pinned when needed, no index URLs written into the file, the same header
(written by us, naming the command that regenerates the file), resolved for the running Python.

Never half-written: the resolver writes a temporary file next to requirements.txt (seeded with
the current pins, so unrelated pins stay put unless --upgrade); only after a successful compile
does its text, under the header, replace requirements.txt atomically (fsutil.atomic_write).
On failure the temporary file is removed, and a
requirements.in created by this run is removed too, so both files are as they were.

Index configuration: uv reads its own configuration (uv.toml, UV_INDEX_URL …), pip-compile reads
pip's (pip.conf, PIP_INDEX_URL …). Extra resolver arguments (``--args``) pass through, e.g.
``--args="--index-url https://my.index/simple"``.
"""

from __future__ import annotations

import re
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PiperackError
from .fsutil import atomic_write, sibling_temp
from .tools import find_pip_compile, find_uv

RESOLVERS = ("uv", "pip-tools")
COMMAND = "invoke build-reqs"
_PY_VERSION = re.compile(r"^3\.\d+(\.\d+)?$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class BuildResult:
    resolver: str
    created_in: bool = False
    written: bool = False
    added: list = field(default_factory=list)  # "name==version"
    removed: list = field(default_factory=list)
    changed: list = field(default_factory=list)  # "name old -> new"
    stale: bool = False


# --- finding the resolvers -------------------------------------------------------------------


def choose_resolver(resolver: str | None) -> tuple[str, list]:
    """(name, command) of the resolver to use; a PiperackError saying what to install if none."""
    if resolver not in (None, *RESOLVERS):
        raise PiperackError(f"unknown resolver {resolver!r}: use one of {', '.join(RESOLVERS)}")
    if resolver in (None, "uv"):
        cmd = find_uv()
        if cmd:
            return "uv", cmd
        if resolver == "uv":
            raise PiperackError("uv is not installed: install it with `pip install uv` (or use --resolver pip-tools)")
    cmd = find_pip_compile()
    if cmd:
        return "pip-tools", cmd
    if resolver == "pip-tools":
        raise PiperackError("pip-compile is not installed: install it with `pip install pip-tools`")
    raise PiperackError("no resolver found: install uv (`pip install uv`) or pip-tools (`pip install pip-tools`)")


# --- commands ---------------------------------------------------------------------------------


def header(options: list) -> str:
    command = " ".join([COMMAND, *options])
    return f"# Pinned runtime dependencies, compiled from requirements.in. Regenerate with: {command}\n"


def resolver_command(
    name: str,
    base: list,
    in_file: str,
    out_file: str,
    *,
    upgrade: bool = False,
    upgrade_packages=(),
    generate_hashes: bool = False,
    python_version: str | None = None,
    universal: bool = False,
    extra_args=(),
) -> list:
    """The argv compiling in_file into out_file with the given resolver (uv or pip-tools)."""
    if name == "uv":
        cmd = [
            *base,
            "pip",
            "compile",
            in_file,
            "--output-file",
            out_file,
            "--quiet",
            "--no-header",
            "--python",
            sys.executable,
        ]
        if python_version:
            cmd += ["--python-version", python_version]
        if universal:
            cmd.append("--universal")
    else:
        cmd = [
            *base,
            in_file,
            "--output-file",
            out_file,
            "--quiet",
            "--no-header",
            "--allow-unsafe",
            "--strip-extras",
            "--no-emit-index-url",
            "--no-emit-trusted-host",
            "--no-emit-find-links",
            "--resolver",
            "backtracking",
        ]
    if upgrade:
        cmd.append("--upgrade")
    for pkg in upgrade_packages or ():
        cmd += ["--upgrade-package", pkg]
    if generate_hashes:
        cmd.append("--generate-hashes")
    cmd += list(extra_args or ())
    return cmd


def explain(output: str, limit: int = 8) -> str:
    """The resolver's explanation of a failure in a few lines (tracebacks reduced to messages)."""
    lines = [_ANSI.sub("", line).rstrip() for line in output.splitlines()]
    lines = [line for line in lines if line.strip()]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        keep = []
        for line in lines:
            if line.startswith((" ", "Traceback", "The above exception", "During handling")):
                continue
            m = re.match(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*): (.*)$", line)
            keep.append(f"{m.group(1)}: {m.group(2)}" if m else line)
        lines = keep or lines
    else:
        starts = [i for i, line in enumerate(lines) if re.match(r"^\s*(error|ERROR|×)", line)]
        if starts:
            lines = lines[starts[0] :]
    if len(lines) > limit:
        lines = lines[: limit - 1] + [f"... ({len(lines) - limit + 1} more lines)"]
    return "\n".join("  " + line.strip() for line in lines)


# --- comparing pins ---------------------------------------------------------------------------


def pins(text: str) -> dict:
    """{(canonical name, marker): (pin, hashes)} of a compiled requirements file (comments,
    annotations and option lines ignored)."""
    from packaging.requirements import InvalidRequirement, Requirement

    from .requirements import canonical, logical_lines, strip_comment

    out = {}
    for _, raw in logical_lines(text):
        line = strip_comment(raw)
        if not line or line.startswith("-"):
            continue
        hashes = tuple(sorted(re.findall(r"--hash[=\s](\S+)", line)))
        line = re.sub(r"\s+--hash[=\s]\S+", "", line).strip()
        try:
            req = Requirement(line)
        except InvalidRequirement:
            out[(line, "")] = ("", hashes)
            continue
        pin = f" @ {req.url}" if req.url else str(req.specifier)
        out[(canonical(req.name), str(req.marker or ""))] = (pin, hashes)
    return out


def _show(key, pin) -> str:
    name, marker = key
    return f"{name}{pin}" + (f" ; {marker}" if marker else "")


def diff_pins(old: dict, new: dict) -> tuple[list, list, list]:
    """(added, removed, changed) as display lines, e.g. 'numpy==2.1.0', 'pandas ==2.2.0 -> ==2.2.3'."""
    added = [_show(k, new[k][0]) for k in sorted(new.keys() - old.keys())]
    removed = [_show(k, old[k][0]) for k in sorted(old.keys() - new.keys())]
    changed = []
    for k in sorted(old.keys() & new.keys()):
        if old[k] == new[k]:
            continue
        if old[k][0] != new[k][0]:
            changed.append(f"{_show(k, '')} {old[k][0]} -> {new[k][0]}")
        else:
            changed.append(f"{_show(k, '')} (hashes)")
    return added, removed, changed


# --- the verb ---------------------------------------------------------------------------------


def _validate(name, python_version, universal):
    if python_version is not None:
        if not _PY_VERSION.match(python_version):
            raise PiperackError(f"--python-version {python_version!r}: expected X.Y, e.g. 3.12")
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        if name == "pip-tools" and ".".join(python_version.split(".")[:2]) != running:
            raise PiperackError(
                f"--python-version {python_version} needs uv: pip-compile resolves for the Python it "
                f"runs on ({running}); install uv (`pip install uv`)"
            )
    if universal and name == "pip-tools":
        raise PiperackError("--universal needs uv (pip-compile has no universal resolution); install uv")


def _label(name: str) -> str:
    return "uv" if name == "uv" else "pip-compile"


_DEBUG_LINE = re.compile(r"^\s*(DEBUG|TRACE|INFO)\b")


def _progress_line(line: str) -> str | None:
    """What a verbose resolver line tells a person waiting: a package picked, a round, the total."""
    match = re.match(r"^DEBUG Selecting: (\S+)", line)
    if match:
        return f"selecting {match.group(1)}"
    if line.startswith(("Resolved ", "ROUND ")) or line.strip().startswith("found candidate "):
        return line.strip()
    return None


def _run(cmd, cwd, env=None):
    """The resolver. On a terminal (and without --quiet) it runs verbose and its progress streams
    (each package it selects); its output is captured either way for the error explanation."""
    from . import ui

    live = ui.progress_enabled()
    if live:
        cmd = ["--verbose" if arg == "--quiet" else arg for arg in cmd]
    try:
        proc = ui.run_streaming(cmd, "resolve", cwd=cwd, env=env, show=_progress_line if live else None)
    except OSError as exc:
        raise PiperackError(f"could not run {cmd[0]}: {exc}") from None
    if live:  # keep what explains a failure, not the debug log
        proc.stdout = "".join(line for line in proc.stdout.splitlines(keepends=True) if not _DEBUG_LINE.match(line))
    return proc


def build_reqs(
    project,
    *,
    resolver: str | None = None,
    upgrade: bool = False,
    upgrade_packages=(),
    generate_hashes: bool = False,
    python_version: str | None = None,
    universal: bool = False,
    extra_args=(),
    check: bool = False,
    env: dict | None = None,
) -> BuildResult:
    """Compile requirements.in into requirements.txt (see the module docstring)."""
    from .requirements import IN_FILE, TXT_FILE, read_requirements_file

    if isinstance(extra_args, str):
        extra_args = shlex.split(extra_args)
    name, base = choose_resolver(resolver)
    _validate(name, python_version, universal)
    if check and (upgrade or upgrade_packages):
        raise PiperackError(
            "--check compares requirements.txt with requirements.in: it cannot be combined with --upgrade"
        )
    root = Path(project.root)
    in_path, txt_path = root / IN_FILE, root / TXT_FILE
    chosen = _Resolver(
        name,
        base,
        root,
        env,
        compile_kw=dict(
            upgrade=upgrade,
            upgrade_packages=upgrade_packages,
            generate_hashes=generate_hashes,
            python_version=python_version,
            universal=universal,
            extra_args=extra_args,
        ),
    )
    if in_path.is_file():
        read_requirements_file(in_path)
    old_text = read_requirements_file(txt_path) if txt_path.is_file() else None
    if check:
        return _check(chosen, in_path, old_text)
    options = _header_options(name, resolver, generate_hashes, python_version, universal)
    result = _compile(project, chosen, in_path, txt_path, old_text, header(options))
    _report(result)
    return result


@dataclass
class _Resolver:
    """The chosen resolver, ready to compile requirements.in (in ``root``) into a given file."""

    name: str
    base: list
    root: Path
    env: dict | None
    compile_kw: dict  # resolver_command's options

    def compile(self, out_file: str):
        from .requirements import IN_FILE

        cmd = resolver_command(self.name, self.base, IN_FILE, out_file, **self.compile_kw)
        return _run(cmd, cwd=self.root, env=self.env)


def _header_options(name, resolver, generate_hashes, python_version, universal) -> list:
    """The options that shape requirements.txt, as the header's regenerate command spells them."""
    options = []
    if generate_hashes:
        options.append("--generate-hashes")
    if python_version:
        options += ["--python-version", python_version]
    if universal:
        options.append("--universal")
    if name == "pip-tools" and resolver == "pip-tools":
        options += ["--resolver", "pip-tools"]
    return options


def _check(chosen: _Resolver, in_path: Path, old_text: str | None) -> BuildResult:
    """--check: compile into a temporary folder and compare its pins with requirements.txt's; a
    PiperackError listing the differences when they differ. Nothing in the project is written."""
    from . import ui
    from .requirements import TXT_FILE

    if not in_path.is_file():
        raise PiperackError("requirements.in is missing: run `invoke build-reqs` to create it from requirements.txt")
    if old_text is None:
        raise PiperackError("requirements.txt is missing: run `invoke build-reqs` to create it")
    if "--hash" in old_text:
        chosen.compile_kw["generate_hashes"] = True  # compare like with like
    with tempfile.TemporaryDirectory(prefix="piperack-reqs-") as tmp:
        out = Path(tmp) / TXT_FILE
        out.write_text(old_text, encoding="utf-8")  # current pins are the preferences
        proc = chosen.compile(str(out))
        if proc.returncode:
            raise PiperackError(
                f"{_label(chosen.name)} could not compile requirements.in:\n"
                + explain(proc.stderr + "\n" + proc.stdout)
            )
        new_text = out.read_text(encoding="utf-8")
    result = BuildResult(resolver=chosen.name)
    added, removed, changed = diff_pins(pins(old_text), pins(new_text))
    result.added, result.removed, result.changed = added, removed, changed
    result.stale = bool(added or removed or changed)
    if result.stale:
        details = "; ".join([f"+ {x}" for x in added] + [f"- {x}" for x in removed] + [f"~ {x}" for x in changed])
        raise PiperackError(f"requirements.txt is stale against requirements.in ({details}): run `{COMMAND}`")
    ui.info(f"requirements.txt is up to date with requirements.in ({chosen.name})")
    return result


def _compile(project, chosen: _Resolver, in_path: Path, txt_path: Path, old_text: str | None, head: str) -> BuildResult:
    """Compile requirements.in (created from requirements.txt's top-level requirements when missing)
    into requirements.txt under ``head``, atomically; on failure both files are as they were."""
    from . import ui
    from .requirements import plan_requirements_in

    in_text, created = plan_requirements_in(project)
    if created and old_text is None:
        raise PiperackError(
            f"no requirements.in or requirements.txt in {chosen.root}: create requirements.in listing the "
            "project's top-level requirements"
        )
    result = BuildResult(resolver=chosen.name)
    try:
        with sibling_temp(txt_path) as tmp_out:
            tmp_out.write_text(old_text or "", encoding="utf-8")  # current pins are the preferences
            if created:
                in_path.write_text(in_text, encoding="utf-8")
            proc = chosen.compile(tmp_out.name)
            if proc.returncode:
                raise PiperackError(
                    f"{_label(chosen.name)} could not compile requirements.in; requirements.txt left unchanged:\n"
                    + explain(proc.stderr + "\n" + proc.stdout)
                )
            body = tmp_out.read_text(encoding="utf-8")
            atomic_write(txt_path, head + body)
            tmp_out.unlink()
            result.written = True
    except BaseException:
        if created and not result.written:
            in_path.unlink(missing_ok=True)
        raise
    result.created_in = created
    if created:
        ui.info("created requirements.in from requirements.txt's top-level requirements")
    new_text = txt_path.read_text(encoding="utf-8")
    result.added, result.removed, result.changed = diff_pins(pins(old_text or ""), pins(new_text))
    return result


def _report(result: BuildResult) -> None:
    """What the compile changed: a count per kind, then one line per pin."""
    from . import ui

    summary = (
        ", ".join(
            part
            for part in (
                f"{len(result.added)} added" if result.added else "",
                f"{len(result.removed)} removed" if result.removed else "",
                f"{len(result.changed)} changed" if result.changed else "",
            )
            if part
        )
        or "no pin changed"
    )
    ui.info(f"requirements.txt compiled from requirements.in with {result.resolver}: {summary}")
    for line in (
        [f"  + {x}" for x in result.added] + [f"  - {x}" for x in result.removed] + [f"  ~ {x}" for x in result.changed]
    ):
        ui.info(line)
