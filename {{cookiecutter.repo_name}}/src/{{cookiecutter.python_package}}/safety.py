"""What keeps the runner's output and input safe: credentials masked in every form they can take,
YAML read with limits, log files never written through a link.

Kept apart from runner.py (how pipelines run) so each stays short; nothing here knows about
pipelines. Like the runner, it is the project's own code: the standard library and PyYAML only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import sys
import traceback
from pathlib import Path

# -- secrets: a credential never reaches the console, a log file or an error, in any form --------

MIN_SECRET = 6  # a shorter credential cannot be masked without masking ordinary words: refused
SECRETS: list[str] = []  # every credential as it may be escaped, longest first: *** in output
_secret_pattern: re.Pattern | None = None  # SECRETS, each also URL-encoded in any way
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#@\s]*)@")
# Query (or fragment) values whose name says they are secret, as pip and uv mask them.
_URL_TOKEN = re.compile(
    r"(?i)([?&;#][^=&#;\s'\"<>]*?(?:token|secret|passw(?:or)?d|pwd|signature|sig|key|credential|auth)=)"
    r"[^&#;\s'\"<>]*[^&#;\s'\"<>:,.)]"  # a value ends before "x: reason", "(url)", "url."
)
_ESCAPES = (
    lambda t: repr(t)[1:-1],
    lambda t: repr(t.encode("utf-8"))[2:-1],
    lambda t: json.dumps(t)[1:-1],
    lambda t: json.dumps(t, ensure_ascii=False)[1:-1],
    lambda t: t.encode("unicode_escape").decode("ascii"),
)


def secret_forms(value: str) -> set[str]:
    """The ways ``value`` can be written out before any URL encoding: as is, escaped as repr and JSON
    escape it (twice: a repr inside a repr), and each line of a multi-line value on its own."""
    forms = {value} | {line.strip() for line in value.splitlines()}
    for _ in range(2):
        forms |= {escape(form) for form in forms for escape in _ESCAPES}
    return {form for form in forms if len(form) >= MIN_SECRET}


def _any_url_encoding(form: str) -> str:
    """A pattern matching ``form`` with any of its characters percent-encoded (either case, or
    encoded twice) and a space as ``+``: whichever characters a library chose to quote."""

    def char(c: str) -> str:
        hex_codes = "".join(f"%{b:02X}" for b in c.encode("utf-8"))
        codes = "".join(f"[{h}{h.lower()}]" if h.isalpha() else h for h in hex_codes)
        return f"(?:{re.escape(c)}|{codes}|{codes.replace('%', '%25')}{'|[+]' if c == ' ' else ''})"

    return "".join(map(char, form))


def add_secret(value: str) -> None:
    """From now on, ``value`` in any form is *** in every message the runner shows or logs."""
    global _secret_pattern
    SECRETS[:] = sorted(set(SECRETS) | secret_forms(value), key=len, reverse=True)
    _secret_pattern = re.compile("|".join(map(_any_url_encoding, SECRETS))) if SECRETS else None


def redact(text: str) -> str:
    """``text`` with every credential form, URL password and token-like URL query value as ***."""
    if _secret_pattern is not None:
        text = _secret_pattern.sub("***", text)

    def userinfo(match: re.Match) -> str:
        user, colon, _ = match[2].partition(":")
        return f"{match[1]}{user}:***@" if colon else f"{match[1]}***@"

    return _URL_TOKEN.sub(r"\1***", _URL_USERINFO.sub(userinfo, text))


def _scrub(record: logging.LogRecord) -> logging.LogRecord:
    """The record's message, traceback and stack as they will be shown, redacted (idempotent)."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - arguments that do not fit the message: shown raw, still redacted
        message = f"{record.msg} {record.args!r}"
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class RedactSecrets(logging.Filter):
    """On every handler: a credential never reaches the console or a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub(record)
        return True


def mask_all_output() -> None:
    """Every log record is redacted when it is made (third-party loggers and handlers added later
    included), Python warnings go through logging, and uncaught tracebacks are redacted too."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        return _scrub(make(*args, **kwargs))

    factory.redacts = True
    logging.setLogRecordFactory(factory)
    logging.captureWarnings(True)
    logging.lastResort.addFilter(RedactSecrets())
    sys.excepthook = lambda kind, exc, tb: sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))

    def thread_hook(args) -> None:
        lines = traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
        sys.stderr.write(redact(f"Exception in thread {getattr(args.thread, 'name', '?')}:\n" + "".join(lines)))

    import threading

    threading.excepthook = thread_hook


# -- YAML with limits -----------------------------------------------------------------------------

MAX_DEPTH = 100  # levels of nesting in one YAML file
MAX_ALIASED = 100_000  # values that aliases (*name) may add by repeating what an anchor holds
MAX_CONF_BYTES = 16 * 1024 * 1024


def bounded_yaml(text: str):
    """``yaml.safe_load(text)``, once the parser's events show it nests at most MAX_DEPTH levels and
    its aliases add at most MAX_ALIASED values (a "billion laughs" file adds billions). Both are
    counted in one pass over the events, without recursion, before anything is built; ValueError."""
    import yaml

    try:  # libyaml's events when there: ten times faster on a deep file
        _check_events(yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError:
        _check_events(yaml.parse(text, Loader=yaml.SafeLoader))  # PyYAML's own words for what libyaml refused
        raise
    return yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - the safe loader, bounded above


def _check_events(events) -> None:
    import yaml

    sizes: dict[str, int] = {}  # anchor -> how many values it stands for
    open_nodes: list[list] = []  # [anchor, values so far] of each collection being read
    aliased = 0
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append([event.anchor, 1])
            if len(open_nodes) > MAX_DEPTH:
                raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, count = open_nodes.pop()
        elif isinstance(event, yaml.AliasEvent):
            anchor, count = None, sizes.get(event.anchor, 1)
            aliased += count
            if aliased > MAX_ALIASED:
                raise ValueError(f"its aliases expand to more than {MAX_ALIASED} values")
        elif isinstance(event, yaml.ScalarEvent):
            anchor, count = event.anchor, 1
        else:
            continue
        if anchor:
            sizes[anchor] = count
        if open_nodes:
            open_nodes[-1][1] += count


MAX_RESOLVED = MAX_CONF_BYTES  # characters that ${...} interpolations may add to one configuration
MAX_KEY_TEXT = 4096  # characters of a key that is itself built by interpolations (${ ${name} })
_RESOLVER = re.compile(r"\s*([A-Za-z_][\w.]*)\s*:")  # ${name:args}: a resolver call, not a key
_BRACES = re.compile(r"\$\{|[{}]")
_EVALUATING = {"oc.decode", "oc.create"}  # they resolve the interpolations of the text they are given
_SELECTING = {"oc.select", "oc.dict.keys", "oc.dict.values", "oc.deprecated", *_EVALUATING}  # args name nodes


class _Unbounded(Exception):
    """An interpolation whose size cannot be worked out before resolving it."""


def check_interpolations(config, lookup=None) -> None:
    """ValueError naming the key (``exc.key``, a tuple) where resolving ``config``'s ``${...}``
    interpolations would add more than MAX_RESOLVED characters or copy more than MAX_ALIASED values
    (``b: ${a}${a}``, ``c: ${b}${b}``, … doubles at every level, and OmegaConf would build it all).

    Counted before anything is resolved, without OmegaConf: the resolved size of each node is worked
    out once and remembered. A reference adds the size of what it names, itself resolved (a key built
    by interpolations, ``${ ${name} }``, is spelled out first); a resolver call adds its arguments',
    any node they name, and ``lookup(name, argument)``: what the resolver returns, such as an
    environment variable's length (``argument`` None: not known in advance). Sizes only over-count;
    what cannot be bounded (a key spelled by a resolver other than oc.env) is refused."""
    sizes: dict[tuple, tuple[int, int]] = {}  # path -> (characters, values inside) once resolved
    busy: set[tuple] = set()
    limit = (MAX_RESOLVED + 1, MAX_ALIASED + 1)

    def walk(parts) -> tuple:
        """The node at ``parts`` (keys or indexes, as text or not) and its path as the data spells it."""
        value, path = config, []
        for part in parts:
            number = int(part) if str(part).isdigit() else None  # a[0], a.0, or a mapping's number key
            if isinstance(value, list) and number is not None and number < len(value):
                part = number
            elif isinstance(value, dict) and part not in value and number in value:
                part = number
            elif not isinstance(value, dict) or part not in value:
                raise KeyError(part)
            value = value[part]
            path.append(part)
        return value, tuple(path)

    def named(reference: str, here: tuple) -> tuple | None:
        """The path ``${reference}`` names from the container ``here`` (None: no such node, which
        OmegaConf reports)."""
        reference = reference.strip().strip("'\"")
        dots = len(reference) - len(reference.lstrip("."))
        if dots > len(here) + 1:
            return None
        base = here[: len(here) - dots + 1] if dots else ()
        try:
            return walk((*base, *(p for p in re.split(r"[.\[\]]", reference[dots:]) if p)))[1]
        except KeyError:
            return None

    def size(path: tuple) -> tuple[int, int]:
        if path in sizes:
            return sizes[path]
        if path in busy:  # a reference cycle: OmegaConf reports it
            return 0, 0
        busy.add(path)
        value = walk(path)[0]
        if isinstance(value, (dict, list)):
            chars, count = 2, 0
            for key in value if isinstance(value, dict) else range(len(value)):
                inner = size((*path, key))
                chars, count = chars + len(str(key)) + 2 + inner[0], count + 1 + inner[1]
            result = (min(chars, limit[0]), min(count, limit[1]))
        elif isinstance(value, str) and "${" in value:
            result = text(value, ends(value), 0, len(value), path[:-1])
        else:
            result = (len(str(value)), 0)
        busy.discard(path)
        sizes[path] = result
        return result

    def ends(value: str) -> dict[int, int]:
        """Where each ``${`` of ``value`` starts -> just past its closing brace: one pass."""
        found, opened = {}, []
        for brace in _BRACES.finditer(value):
            if brace[0] != "}":
                opened.append(brace.start() if brace[0] == "${" else None)
                if len(opened) > MAX_DEPTH:
                    raise RecursionError
            elif opened and (start := opened.pop()) is not None:
                found[start] = brace.end()
        return found

    def interpolations(value: str, closing: dict, lo: int, hi: int):
        """(start, end) of each outermost ``${...}`` in value[lo:hi]; an escaped or unclosed one is text."""
        i = lo
        while (start := value.find("${", i, hi)) >= 0:
            end = closing.get(start, -1)
            slashes = len(value[i:start]) - len(value[i:start].rstrip("\\"))
            if end < 0 or end > hi or slashes % 2:
                i = start + 2
                continue
            yield start, end
            i = end

    def text(value: str, closing: dict, lo: int, hi: int, here: tuple) -> tuple[int, int]:
        """value[lo:hi]'s resolved size: its own characters plus what each interpolation in it adds."""
        chars, count = hi - lo, 0
        for start, end in interpolations(value, closing, lo, hi):
            inner = interpolation(value, closing, start + 2, end - 1, here)
            chars = min(chars - (end - start) + inner[0], limit[0])  # the ${...} gives way to its value
            count = min(count + inner[1], limit[1])
        return chars, count

    def spelled(value: str, closing: dict, lo: int, hi: int, here: tuple, depth: int = 0) -> str | None:
        """value[lo:hi] as OmegaConf would resolve it, when only references to scalars and oc.env
        make it up and it stays short: the text of a key built by interpolations. None otherwise."""
        pieces, i = [], lo
        for start, end in interpolations(value, closing, lo, hi):
            inner = spelled(value, closing, start + 2, end - 1, here, depth + 1)
            call = _RESOLVER.match(inner or "")
            if inner is None or depth > MAX_DEPTH:
                return None
            if call and call[1] == "oc.env":
                name, _, default = inner[call.end() :].partition(",")
                got = os.environ.get(name.strip(), default.strip().strip("'\"") if default else None)
            elif call:
                return None
            else:
                path = named(inner, here)
                got = walk(path)[0] if path is not None else None
                if isinstance(got, str) and "${" in got:
                    got = spelled(got, ends(got), 0, len(got), path[:-1], depth + 1)
            if got is None or isinstance(got, (dict, list)):
                return None
            pieces += [value[i:start], str(got)]
            i = end
        pieces.append(value[i:hi])
        result = "".join(pieces)
        return result if len(result) <= MAX_KEY_TEXT else None

    def interpolation(value: str, closing: dict, lo: int, hi: int, here: tuple) -> tuple[int, int]:
        """What ``${value[lo:hi]}`` adds."""
        dynamic = value.find("${", lo, hi) >= 0
        call = _RESOLVER.match(value, lo, hi)
        if call is None:
            reference = spelled(value, closing, lo, hi, here) if dynamic else value[lo:hi]
            if reference is None:
                raise _Unbounded
            path = named(reference, here)
            return size(path) if path is not None else (hi - lo, 0)
        chars, count = text(value, closing, call.end(), hi, here)
        arguments = spelled(value, closing, call.end(), hi, here) if dynamic else value[call.end() : hi]
        if arguments is None:
            if call[1] in _SELECTING:
                raise _Unbounded
            return min(chars + (lookup(call[1], None) if lookup else 0), limit[0]), count
        if call[1] in _EVALUATING and "${" in arguments:  # escaped or not, what the text holds is resolved
            unescaped = re.sub(r"\\+(?=\$\{)", "", arguments)
            inner = text(unescaped, ends(unescaped), 0, len(unescaped), here)
            chars, count = chars + inner[0], count + inner[1]
        for argument in arguments.split(","):
            path = named(argument, here) if argument.strip() else None
            if path is not None:  # oc.select, oc.dict.values, …: a resolver may hand back a node
                chars, count = chars + size(path)[0], count + size(path)[1]
            if lookup is not None:
                chars += lookup(call[1], argument.strip())
        return min(chars, limit[0]), min(count, limit[1])

    added_chars = added_values = 0
    todo: list[tuple] = [()]
    while todo:
        path = todo.pop()
        value = walk(path)[0]
        if isinstance(value, (dict, list)):
            todo.extend((*path, key) for key in reversed(list(value) if isinstance(value, dict) else range(len(value))))
            continue
        if not isinstance(value, str) or "${" not in value:
            continue
        try:
            chars, count = size(path)
        except RecursionError:
            raise _too_much(path, "its interpolations are nested too deeply") from None
        except _Unbounded:
            reason = "it names a key built by an interpolation that cannot be worked out in advance"
            raise _too_much(path, reason) from None
        added_chars, added_values = added_chars + chars, added_values + count
        if added_chars > MAX_RESOLVED:
            raise _too_much(path, f"its interpolations expand to more than {MAX_RESOLVED // 2**20} MiB")
        if added_values > MAX_ALIASED:
            raise _too_much(path, f"its interpolations expand to more than {MAX_ALIASED} values")


def _too_much(key: tuple, reason: str) -> ValueError:
    error = ValueError(f"{'.'.join(map(str, key))}: {reason}")
    error.key = key
    return error


def nesting(value) -> int:
    """How deeply ``value`` (JSON or YAML data) nests mappings and lists, counted without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            todo.extend((inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item))
    return deepest


def shape(value) -> str:
    """What a YAML value is, for messages: "a mapping", "a list", "a string", …"""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return "nothing" if value is None else "a string" if isinstance(value, str) else f"a {type(value).__name__}"


# -- log files ------------------------------------------------------------------------------------


def writable_log_file(filename: str) -> Path:
    """``filename`` (relative to the project root, the working directory) ready to be appended to,
    created empty if missing: OSError with the reason when writing it could reach elsewhere. A
    relative path may not leave the project (an absolute one is taken as meant); inside the project
    no folder on the way may be a symbolic link; the file itself may not be a link, nor anything
    but a regular file (a FIFO would block the run)."""
    here = Path.cwd()
    path = Path(filename)
    if not path.is_absolute() and ".." in path.parts:
        raise OSError(1, "a relative path leaving the project: give an absolute path to log outside it")
    full = path if path.is_absolute() else here / path
    if full.is_relative_to(here):
        folder = here
        for part in full.relative_to(here).parts[:-1]:
            folder = folder / part
            if folder.is_symlink():
                raise OSError(40, f"{folder.relative_to(here)} is a symbolic link")
    full.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(full, flags, 0o644)
    except OSError as exc:
        if os.path.islink(full):
            raise OSError(40, f"{filename} is a symbolic link") from None
        if os.path.exists(full) and not os.path.isfile(full):
            raise OSError(21, f"{filename} is not a regular file") from None
        raise OSError(exc.errno, exc.strerror) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(21, f"{filename} is not a regular file")
    finally:
        os.close(fd)
    return full
