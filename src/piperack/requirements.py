"""Requirement files: parse, normalise, plan and merge requirements.in.

Shared by ``pull`` (merges a micro-package's requirements into requirements.in) and
``build-reqs`` (compiles requirements.in into a pinned requirements.txt).

Everything here is pure (text in, text out): the verbs write. ``packaging`` is imported inside
functions so that ``invoke --list`` stays fast.

Conflict detection (:func:`specifiers_compatible`)
--------------------------------------------------
Two specifier sets can both hold when some version satisfies their intersection. The set of
versions satisfying a conjunction of PEP 440 clauses is a union of intervals whose end points
are the versions the clauses mention (``~=`` and ``==X.*`` are boundaries too). So instead of
hand-written interval arithmetic (easy to get wrong with pre-, post- and dev-releases and the
exclusive-ordering rules of PEP 440), we build a finite candidate set: every mentioned version,
versions just above it at every release depth (``1.4`` -> ``1.4.0...1``, ``1.5``, ``2``), versions
just below it (``1.4`` -> ``1.3.999999999``, ``0.999999999``), their dev/pre/post variants, and
the extremes. ``packaging`` itself then decides membership, with its usual pre-release rules.
If no candidate satisfies both sets, the requirements conflict. The unit tests check this against
a brute-force enumeration of a dense grid of versions.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PiperackError, first_line

IN_FILE = "requirements.in"
TXT_FILE = "requirements.txt"

IN_HEADER = (
    "# Top-level (loose) requirements of this project.\n"
    "# `invoke build-reqs` compiles them into pinned requirements.txt.\n"
)
CREATED_NOTE = "# Created from requirements.txt's top-level requirements.\n"

_TRAILING_COMMENT = re.compile(r"(^|\s+)#.*$")
_OPTION = re.compile(r"(^|\s)--?[A-Za-z]")
_HASH_OPTION = re.compile(r"\s+--hash[=\s]\S+")


def canonical(name: str) -> str:
    """The PEP 503 normalised form of a project name (``Foo_Bar`` -> ``foo-bar``)."""
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def logical_lines(text: str):
    """Yield (lineno, logical line) with backslash continuations joined; lineno is 1-based and
    names the first physical line of the logical line. Comments are not yet removed."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i + 1
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].lstrip()
        if line.endswith("\\"):
            line = line[:-1]
        i += 1
        yield start, line


def strip_comment(line: str) -> str:
    return _TRAILING_COMMENT.sub("", line).strip()


def _refuse_option(source: str, lineno: int, line: str):
    raise PiperackError(
        f"{source}:{lineno}: option lines are not supported here (-r, -c, -e, --index-url, "
        f"--extra-index-url, --find-links, ...): {line.strip()!r}; list plain requirements"
    )


def _to_requirement(source: str, lineno: int, line: str):
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(line)
    except InvalidRequirement as exc:
        raise PiperackError(f"{source}:{lineno}: invalid requirement {line!r}: {first_line(exc)}") from None


def parse_requirements(text: str, source: str) -> list:
    """Parse a requirements file into ``packaging.requirements.Requirement`` objects.

    Blank lines, full-line and trailing (`` #``) comments and backslash continuations are
    handled. Any option line (``-r``, ``-c``, ``-e``, ``--index-url``, ``--find-links`` ...) or
    per-requirement option (``--hash``) and any invalid requirement raises PiperackError naming
    ``source:lineno`` and the line: nothing is silently dropped.
    """
    reqs = []
    for lineno, raw in logical_lines(text):
        line = strip_comment(raw)
        if not line:
            continue
        if _OPTION.search(line):
            _refuse_option(source, lineno, raw)
        reqs.append(_to_requirement(source, lineno, line))
    return reqs


def read_requirements_file(path: Path, options_allowed: bool = True) -> str:
    """The text of a requirements file, checked so a resolver never meets what it would choke on:
    one line naming the file (and line) for bytes that are not UTF-8 text, a continuation at the
    end, and a requirement that does not parse (option lines such as -r / -c pass when allowed)."""
    source = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PiperackError(f"{source}: cannot read it ({exc.strerror or exc})") from None
    if b"\x00" in data:
        raise PiperackError(f"{source}: binary data (a NUL byte), not a requirements file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PiperackError(f"{source}: not UTF-8 text (byte {exc.start}), not a requirements file") from None
    lines = text.splitlines()
    if lines and lines[-1].rstrip().endswith("\\"):
        raise PiperackError(f"{source}:{len(lines)}: the last line ends with a '\\' continuation and nothing follows")
    for lineno, raw in logical_lines(text):
        line = strip_comment(raw)
        if not line:
            continue
        if _OPTION.search(line):
            if not options_allowed:
                _refuse_option(source, lineno, raw)
            continue
        _to_requirement(source, lineno, line)
    return text


@dataclass
class _Entry:
    lineno: int
    text: str
    via: list = field(default_factory=list)


def top_level_from_txt(text: str, source: str) -> list:
    """The top-level requirement lines of a requirements.txt, as strings.

    A compiled file (pip-compile or uv output, recognised by its ``# via`` annotations, in split
    or line style) yields the requirements annotated ``via -r <file>`` or with no annotation;
    a hand-written file (or one compiled with ``--no-annotate``) yields every requirement line,
    pins included. ``--hash`` options of compiled files are
    dropped (they belong to the pins, not to requirements.in); any other option line is refused
    with an error naming the line.
    """
    entries: list[_Entry] = []
    compiled = False
    in_via = False
    for lineno, raw in logical_lines(text):
        stripped = raw.strip()
        if not stripped:
            in_via = False
            continue
        if stripped.startswith("#"):
            content = stripped[1:]
            if content.strip().startswith("via") and (content.strip() == "via" or content.strip()[3:4].isspace()):
                compiled = True
                rest = content.strip()[3:].strip()
                if entries and rest:
                    entries[-1].via.append(rest)
                in_via = bool(entries)
            elif in_via and content[:1].isspace() and content.strip():
                entries[-1].via.append(content.strip())
            else:
                in_via = False
            continue
        in_via = False
        via = []
        m = re.search(r"\s#\s*via\s+(.*)$", raw)
        if m:
            compiled = True
            via = [v.strip() for v in m.group(1).split(",") if v.strip()]
        line = strip_comment(raw)
        line = _HASH_OPTION.sub("", " " + line).strip()
        if not line:
            continue
        if _OPTION.search(line):
            _refuse_option(source, lineno, raw)
        _to_requirement(source, lineno, line)
        entries.append(_Entry(lineno, line, via))
    if not compiled:
        return [e.text for e in entries]
    return [e.text for e in entries if not e.via or any(v.startswith("-r ") for v in e.via)]


def plan_requirements_in(project) -> tuple[str, bool]:
    """The text requirements.in should have and whether it would be created.

    Existing requirements.in: its text, False. Otherwise it is planned from requirements.txt's
    top-level requirements (see :func:`top_level_from_txt`), or empty (a header only) when there
    is no requirements.txt either; True. Writes nothing.
    """
    root = Path(project.root)
    in_path = root / IN_FILE
    if in_path.is_file():
        return in_path.read_text(encoding="utf-8"), False
    txt_path = root / TXT_FILE
    if txt_path.is_file():
        lines = top_level_from_txt(txt_path.read_text(encoding="utf-8"), TXT_FILE)
        body = "".join(f"{line}\n" for line in lines)
        return IN_HEADER + CREATED_NOTE + body, True
    return IN_HEADER, True


# --- merging -------------------------------------------------------------------------------

_BIG = 999999999


def _candidates(specs) -> list:
    """Candidate versions around every version the given specifiers mention (see module doc)."""
    from packaging.version import InvalidVersion, Version

    bases = []
    literals = []
    for spec in specs:
        op, ver = spec.operator, spec.version
        if op == "===":
            literals.append(ver)
            try:
                bases.append(Version(ver))
            except InvalidVersion:
                pass
            continue
        if ver.endswith(".*"):
            ver = ver[:-2]
        try:
            v = Version(ver)
        except InvalidVersion:
            continue
        bases.append(v)
        if op == "~=":
            # ~=X.Y.Z means >=X.Y.Z, ==X.Y.*: the next boundary is X.(Y+1)
            rel = list(v.release[:-1])
            rel[-1] += 1
            bases.append(Version(f"{v.epoch}!" + ".".join(map(str, rel))))
    if not bases:
        return ["0", "1", "1.0.dev0", "1.0a1", "1.0.post1", *literals]
    depth = max(len(v.release) for v in bases) + 2
    out = set(literals)

    def add_release(epoch, rel, with_variants=True):
        s = f"{epoch}!" + ".".join(map(str, rel))
        out.add(s)
        if with_variants:
            out.update({s + ".dev0", s + "a0", s + "rc" + str(_BIG), s + ".post1"})

    for v in bases:
        out.add(str(v))
        out.add(v.public)
        if v.pre is not None or v.dev is not None or v.post is not None:
            # close neighbours of a pre/post/dev release
            out.add(str(v) + ".post1" if v.post is None and v.dev is None else str(v))
            if v.pre is not None and v.dev is None:
                kind, n = v.pre
                out.add(f"{v.epoch}!{v.base_version}{kind}{n + 1}")
                out.add(f"{v.epoch}!{v.base_version}{kind}{n}.post1")
            if v.dev is not None:
                out.add(f"{v.epoch}!{v.base_version}.dev{v.dev + 1}")
        rel = list(v.release) + [0] * (depth - len(v.release))
        add_release(v.epoch, v.release)
        for i in range(depth):  # just above, at every depth
            up = rel[: i + 1]
            up[i] += 1
            add_release(v.epoch, up)
            add_release(v.epoch, rel[:i] + [rel[i] + 1] + [0] * (depth - i - 1), False)
        for i in range(depth):  # just below, at every depth
            if rel[i] > 0:
                add_release(v.epoch, rel[:i] + [rel[i] - 1])
                add_release(v.epoch, rel[:i] + [rel[i] - 1] + [_BIG] * (depth - i - 1))
        if v.epoch > 0:
            add_release(v.epoch - 1, [_BIG])
        add_release(v.epoch, [0])
        add_release(v.epoch + 1, [0])
    out.update({"0", "0.dev0", str(_BIG)})
    return sorted(out)


def specifiers_compatible(a, b) -> bool:
    """True when some version satisfies both specifier sets (strings or SpecifierSets)."""
    return _specifiers_compatible(str(a), str(b))


@functools.lru_cache(maxsize=256)
def _specifiers_compatible(a: str, b: str) -> bool:
    """``specifiers_compatible`` of two specifier strings: packages pulled together mostly share
    their Requires-Python and requirement ranges, so each pair is worked out once."""
    from packaging.specifiers import SpecifierSet

    a = SpecifierSet(a)
    b = SpecifierSet(b)
    both = a & b
    if not len(both):
        return True
    for cand in _candidates(list(both)):
        try:
            if both.contains(cand):
                return True
        except Exception:  # an arbitrary (===) literal that is not a valid version
            if all(s.operator == "===" and s.version == cand for s in both):
                return True
    return False


@dataclass
class MergeResult:
    """What merging requirements into requirements.in would do (nothing is written)."""

    text: str
    added: list = field(default_factory=list)
    present: list = field(default_factory=list)
    conflicts: list = field(default_factory=list)  # [(existing line, new line)]

    @property
    def changed(self) -> bool:
        return bool(self.added)


def _existing_requirements(in_text: str, source: str = IN_FILE):
    """(line, Requirement) for each requirement of requirements.in; option lines (which are
    legitimate resolver input there, e.g. --index-url) are kept in the text and skipped here."""
    out = []
    for lineno, raw in logical_lines(in_text):
        line = strip_comment(raw)
        if not line or _OPTION.search(line):
            continue
        out.append((line, _to_requirement(source, lineno, line)))
    return out


def _markers_overlap(m1, m2) -> bool:
    # No marker means "always". Different markers may select disjoint environments; we do not
    # decide marker satisfiability and leave such pairs to the resolver (never a false conflict).
    return m1 is None or m2 is None or str(m1) == str(m2)


def _same(r1, r2) -> bool:
    return (
        canonical(r1.name) == canonical(r2.name)
        and set(map(canonical, r1.extras)) == set(map(canonical, r2.extras))
        and set(map(str, r1.specifier)) == set(map(str, r2.specifier))
        and str(r1.marker) == str(r2.marker)
        and r1.url == r2.url
    )


def merge_requirements(in_text: str, reqs: list) -> MergeResult:
    """Merge requirements into the text of requirements.in, without duplicates. Pure.

    For each new requirement (a Requirement or a requirement string), in order:
    - *present* when requirements.in (or an earlier one of ``reqs``) already has it: the same
      name, extras, specifiers and marker, or the new one has no specifier, URL or new extras;
    - a *conflict* when an existing requirement of the same name (whose marker may apply at the
      same time) cannot hold together with it: specifiers with no common version (decided by
      :func:`specifiers_compatible`) or two different direct URLs. Conflicting lines are not
      added; the caller decides what to do (pull warns and leaves them out);
    - otherwise *added*: appended as a line at the end (a compatible extra constraint on an
      existing name is added too; resolvers intersect them).
    """
    from packaging.requirements import Requirement

    existing = _existing_requirements(in_text)
    result = MergeResult(text=in_text)
    new_lines = []
    for req in reqs:
        if not isinstance(req, Requirement):
            req = Requirement(str(req))
        name = canonical(req.name)
        same_name = [(line, r) for line, r in existing if canonical(r.name) == name]
        if any(_same(r, req) for _, r in same_name) or (
            same_name
            and not req.specifier
            and req.url is None
            and any(
                set(map(canonical, req.extras)) <= set(map(canonical, r.extras))
                and (req.marker is None or str(req.marker) == str(r.marker))
                for _, r in same_name
            )
        ):
            result.present.append(req)
            continue
        conflicts = []
        for line, r in same_name:
            if not _markers_overlap(r.marker, req.marker):
                continue
            if r.url and req.url:
                if r.url != req.url:
                    conflicts.append((line, str(req)))
            elif r.url or req.url:
                continue
            elif not specifiers_compatible(r.specifier, req.specifier):
                conflicts.append((line, str(req)))
        if conflicts:
            result.conflicts.extend(conflicts)
            continue
        line = str(req)
        new_lines.append(line)
        existing.append((line, req))
        result.added.append(req)
    if new_lines:
        text = in_text
        if text and not text.endswith("\n"):
            text += "\n"
        result.text = text + "".join(f"{line}\n" for line in new_lines)
    return result
