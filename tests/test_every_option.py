"""Every option of every task and of the `piperack` command is exercised by a user-level test.

The options are enumerated from the code (``piperack.tasks.namespace`` through invoke's own
``Task.get_arguments()``, and ``piperack.cli._parser()`` with its subcommands), so a new option
without a test fails here, naming it. What counts as exercised is read from the source of the
template tests (tests/test_*.py; the unit tests in tests/unit/ call the engine, not the command),
with ``ast``, never by running them:

* a command line is a list or tuple literal whose first element is the program (``"invoke"``,
  ``"piperack"``, or a path expression ending in one, e.g. ``str(venv / "bin" / "piperack")``, or
  one after ``"-m"``), or the arguments of a call to a function whose name contains ``invoke``
  (``run_invoke``, ``invoke_b``, ...), or a call to a helper whose body passes its ``*args`` (or a
  parameter) on to one of those (``build(root, "--check")``, and the fixture that returns it);
* each argument is resolved to the strings it can hold: literals, names assigned in the function
  or the module, ``for`` targets over literals, ``pytest.mark.parametrize`` cases of a parameter,
  what a helper of the module returns (``*_options(state)``) and ``fixture["key"]`` when that
  fixture returns or yields a dict literal holding the key;
* in an invoke command line a flag belongs to the task named before it (words after ``--`` are the
  container's command, not options); in a piperack one, to the subcommand before it, else to the
  top level. ``piperack`` alone, as a whole list literal, is the call with no command.

So an option counts only where a command line gives it to its own task: a flag in another call
of the same test, in an expected error message or for another task does not count (the scanner's
own test below shows each case).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PROG = "\0prog:"  # a token: the program of a command line
ARGS = "\0args"  # a token: the *args of a helper, filled at its call sites
UNKNOWN = None
MAX_ALTERNATIVES = 512

# Options no user-level test can exercise here, each with the reason. Keep it empty if at all possible.
ALLOWED_UNTESTED: dict[tuple[str, str], str] = {}


# -- what exists -----------------------------------------------------------------------------------


def _flag(name: str) -> str:
    return ("--" if len(name) > 1 else "-") + name


def expected_options() -> dict[tuple[str, str], set[str]]:
    """(command, option) -> the spellings that count, for every task option and piperack option.

    The option "" stands for the task or subcommand itself, "(no command)" for bare `piperack`."""
    from piperack import cli
    from piperack.tasks import namespace

    options: dict[tuple[str, str], set[str]] = {}
    for task_name in sorted(namespace.task_names):
        command = f"invoke {task_name}"
        options[(command, "")] = {""}
        for argument in namespace[task_name].get_arguments():
            if argument.positional:
                continue  # given as a word, not an option: the task's own entry covers it
            names = sorted(argument.names, key=len, reverse=True)
            options[(command, _flag(names[0]))] = {_flag(n) for n in names}
    parser = cli._parser()
    options[("piperack", "(no command)")] = {"(no command)"}

    def add(command: str, sub_parser) -> None:
        for action in sub_parser._actions:
            if action.option_strings:
                longest = max(action.option_strings, key=len)
                options[(command, longest)] = set(action.option_strings)

    add("piperack", parser)
    for action in parser._subparsers._group_actions:
        for sub_name, sub_parser in action.choices.items():
            options[(f"piperack {sub_name}", "")] = {""}
            add(f"piperack {sub_name}", sub_parser)
    return options


# -- what the tests run ----------------------------------------------------------------------------


class Scope:
    """A function (or the module): its parameters, parametrize cases and assignments."""

    def __init__(self, node: ast.AST, parent: Scope | None):
        self.node, self.parent = node, parent
        self.assigned: dict[str, list[ast.expr]] = {}
        self.cases: dict[str, list[ast.expr]] = {}
        self.params: list[str] = []
        self.vararg: str | None = None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.params = [a.arg for a in node.args.posonlyargs + node.args.args]
            self.vararg = node.args.vararg.arg if node.args.vararg else None
            for decorator in node.decorator_list:
                self._parametrize(decorator)
        for child in _own_nodes(node):
            if isinstance(child, ast.Assign):
                for target in child.targets:
                    self._bind(target, child.value)
            elif isinstance(child, ast.AnnAssign | ast.AugAssign) and child.value is not None:
                self._bind(child.target, child.value)
            elif isinstance(child, ast.For):
                for item in self._elements(child.iter):
                    self._bind(child.target, item)

    def _elements(self, node: ast.expr) -> list[ast.expr]:
        if isinstance(node, ast.Name):
            for value in self.lookup(node.id):
                if isinstance(value, ast.List | ast.Tuple):
                    return list(value.elts)
            return []
        return list(node.elts) if isinstance(node, ast.List | ast.Tuple) else []

    def _bind(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.assigned.setdefault(target.id, []).append(value)
        elif isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List):
            for sub_target, sub_value in zip(target.elts, value.elts, strict=False):
                self._bind(sub_target, sub_value)

    def _parametrize(self, decorator: ast.expr) -> None:
        if not (
            isinstance(decorator, ast.Call)
            and isinstance(decorator.func, ast.Attribute)
            and decorator.func.attr == "parametrize"
            and len(decorator.args) >= 2
        ):
            return
        names_node, values_node = decorator.args[:2]
        if isinstance(names_node, ast.Constant) and isinstance(names_node.value, str):
            names = [n.strip() for n in names_node.value.split(",") if n.strip()]
        elif isinstance(names_node, ast.List | ast.Tuple):
            names = [e.value for e in names_node.elts if isinstance(e, ast.Constant)]
        else:
            return
        parent = self.parent or self
        for case in parent._elements(values_node) if isinstance(values_node, ast.Name) else self._elements(values_node):
            if isinstance(case, ast.Call) and getattr(case.func, "attr", "") == "param":
                values = list(case.args)
            elif len(names) > 1 and isinstance(case, ast.Tuple | ast.List):
                values = list(case.elts)
            else:
                values = [case]
            for name, value in zip(names, values, strict=False):
                self.cases.setdefault(name, []).append(value)

    def lookup(self, name: str) -> list[ast.expr]:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.cases or name in scope.assigned:
                return scope.cases.get(name, []) + scope.assigned.get(name, [])
            if name in scope.params or name == scope.vararg:
                return []
            scope = scope.parent
        return []


def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function (or module) body, not those of functions defined inside it."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        yield child
        yield from _own_nodes(child)


def _program(node: ast.expr) -> str | None:
    """'invoke' or 'piperack' when the expression is that program (a name or a path ending in it)."""
    constants = [n for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    strings = [n.value for n in sorted(constants, key=lambda n: (n.lineno, n.col_offset))]
    if strings and strings[-1].rpartition("/")[2] in {"invoke", "inv", "piperack"}:
        return "piperack" if strings[-1].endswith("piperack") else "invoke"
    return None


def _product(parts: list[list[list]]) -> list[list]:
    result: list[list] = [[]]
    for alternatives in parts:
        result = [head + tail for head, tail in itertools.product(result, alternatives)][:MAX_ALTERNATIVES]
    return result


class Scanner:
    def __init__(self) -> None:
        self.wrappers: dict[str, tuple[list[list], list[str]]] = {}  # name -> (templates, params)
        self.lines: list[list] = []  # command lines found: [PROG+name, token, ...]
        self.functions: dict[str, Scope] = {}  # the functions of the module being scanned, by name

    def expand(self, node: ast.expr, scope: Scope, depth: int = 0) -> list[list]:
        """The token sequences an expression can splice into a command line (alternatives)."""
        if depth > 8:
            return [[UNKNOWN]]
        if isinstance(node, ast.Constant):
            return [[node.value if isinstance(node.value, str) else UNKNOWN]]
        if isinstance(node, ast.JoinedStr):
            first = node.values[0] if node.values else None
            return [[first.value if isinstance(first, ast.Constant) else UNKNOWN]]
        if isinstance(node, ast.List | ast.Tuple):
            return _product([self.expand(e, scope, depth + 1) for e in node.elts])
        if isinstance(node, ast.Starred):
            return self.expand(node.value, scope, depth + 1)
        if isinstance(node, ast.IfExp):
            return self.expand(node.body, scope, depth + 1) + self.expand(node.orelse, scope, depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return _product([self.expand(node.left, scope, depth + 1), self.expand(node.right, scope, depth + 1)])
        if isinstance(node, ast.Name):
            if node.id == scope.vararg and node.id not in scope.assigned:
                return [[ARGS]]
            if node.id in scope.params and node.id not in scope.cases and node.id not in scope.assigned:
                return [[f"\0arg:{node.id}"]]
            values = scope.lookup(node.id)
            alternatives = [alt for value in values for alt in self.expand(value, scope, depth + 1)]
            return alternatives[:MAX_ALTERNATIVES] or [[UNKNOWN]]
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and isinstance(node.slice, ast.Constant)
            and node.value.id in self.functions
        ):  # fixture["key"]: the value the fixture returns or yields under that key
            fixture = self.functions[node.value.id]
            alternatives = [
                alt
                for child in _own_nodes(fixture.node)
                if isinstance(child, ast.Return | ast.Yield) and isinstance(child.value, ast.Dict)
                for key, value in zip(child.value.keys, child.value.values, strict=True)
                if isinstance(key, ast.Constant) and key.value == node.slice.value
                for alt in self.expand(value, fixture, depth + 1)
            ]
            return alternatives[:MAX_ALTERNATIVES] or [[UNKNOWN]]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in self.functions:
            helper = self.functions[node.func.id]  # a helper building (part of) a command line: what it returns
            alternatives = [
                alt
                for child in _own_nodes(helper.node)
                if isinstance(child, ast.Return) and child.value is not None
                for alt in self.expand(child.value, helper, depth + 1)
            ]
            if alternatives:
                return alternatives[:MAX_ALTERNATIVES]
        program = _program(node)
        return [[PROG + program]] if program else [[UNKNOWN]]

    def scan(self, tree: ast.Module) -> None:
        scopes: list[tuple[ast.AST, Scope]] = []

        def visit(node: ast.AST, parent: Scope | None) -> None:
            scope = Scope(node, parent)
            scopes.append((node, scope))
            for child in _own_nodes_and_defs(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    visit(child, scope)

        visit(tree, None)
        self.functions = {node.name: scope for node, scope in scopes if isinstance(node, ast.FunctionDef)}
        found: list[tuple[list, Scope, ast.AST]] = []
        for node, scope in scopes:
            for child in _own_nodes(node):
                for line in self._command_lines(child, scope):
                    found.append((line, scope, node))
        # helpers passing their *args (or a parameter) on to a command line, and fixtures returning them
        for line, scope, node in found:
            if any(isinstance(t, str) and (t == ARGS or t.startswith("\0arg:")) for t in line):
                templates, _ = self.wrappers.setdefault(node.name, ([], scope.params))
                templates.append(line)
        for node, _scope in scopes:
            if isinstance(node, ast.FunctionDef):
                for child in _own_nodes(node):
                    if isinstance(child, ast.Return) and isinstance(child.value, ast.Name):
                        if child.value.id in self.wrappers:
                            self.wrappers.setdefault(node.name, self.wrappers[child.value.id])
        for node, scope in scopes:
            for child in _own_nodes(node):
                if isinstance(child, ast.Call) and _callee(child) in self.wrappers:
                    found.extend((line, scope, node) for line in self._instantiate(child, scope))
        self.lines.extend(line for line, _, _ in found)

    def _command_lines(self, node: ast.AST, scope: Scope) -> list[list]:
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            lines = []
            first = node.elts[0]
            for tokens in self.expand(node, scope):
                if isinstance(first, ast.Constant) and _program(first) and tokens:
                    tokens = [PROG + _program(first), *tokens[1:]]
                for i, token in enumerate(tokens):
                    if i > 2:
                        break
                    program = token[len(PROG) :] if isinstance(token, str) and token.startswith(PROG) else None
                    if program is None and i > 0 and tokens[i - 1] == "-m" and token in {"invoke", "piperack"}:
                        program = token
                    if program:
                        lines.append([PROG + program, *tokens[i + 1 :]])
                        break
            return lines
        if isinstance(node, ast.Call) and "invoke" in _callee(node).lower():
            args = ast.List(elts=list(node.args), ctx=ast.Load())
            return [[PROG + "invoke", *tokens] for tokens in self.expand(args, scope)]
        return []

    def _instantiate(self, call: ast.Call, scope: Scope) -> list[list]:
        templates, params = self.wrappers[_callee(call)]
        bound: dict[str, ast.expr] = {}
        for name, value in zip(params, call.args, strict=False):
            bound[name] = value
        for keyword in call.keywords:
            if keyword.arg:
                bound[keyword.arg] = keyword.value
        rest = [a for a in call.args[len(params) :]]
        lines = []
        for template in templates:
            parts = []
            for token in template:
                if token == ARGS:
                    parts.append(self.expand(ast.List(elts=rest, ctx=ast.Load()), scope))
                elif isinstance(token, str) and token.startswith("\0arg:"):
                    value = bound.get(token[len("\0arg:") :])
                    parts.append(self.expand(value, scope) if value is not None else [[UNKNOWN]])
                else:
                    parts.append([[token]])
            lines.extend(_product(parts))
        return lines


def _own_nodes_and_defs(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _own_nodes_and_defs(child)


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def exercised(lines: list[list], task_names: set[str], subcommands: set[str]) -> set[tuple[str, str]]:
    """(command, spelling) pairs the command lines give: "" for the task or subcommand itself."""
    seen: set[tuple[str, str]] = set()
    for line in lines:
        program, tokens = line[0][len(PROG) :], line[1:]
        if program == "piperack":
            if not tokens:
                seen.add(("piperack", "(no command)"))
            command = "piperack"
            for token in tokens:
                if not isinstance(token, str) or token.startswith("\0"):
                    continue
                if command == "piperack" and token in subcommands:
                    command = f"piperack {token}"
                    seen.add((command, ""))
                elif token.startswith("-"):
                    seen.add((command, token.split("=", 1)[0]))
            continue
        task = None
        for token in tokens:
            if not isinstance(token, str) or token.startswith("\0"):
                continue
            if token == "--":
                break  # the rest is a command for the container (docker-cmd), not options
            if token in task_names:
                task = token
                seen.add((f"invoke {task}", ""))
            elif task and token.startswith("-"):
                seen.add((f"invoke {task}", token.split("=", 1)[0]))
    return seen


def scan_sources(sources: dict[str, str], task_names: set[str], subcommands: set[str]) -> set[tuple[str, str]]:
    scanner = Scanner()
    for name, source in sources.items():
        scanner.scan(ast.parse(source, filename=name))
    return exercised(scanner.lines, task_names, subcommands)


def _names() -> tuple[set[str], set[str]]:
    from piperack import cli
    from piperack.tasks import namespace

    subcommands = {name for action in cli._parser()._subparsers._group_actions for name in action.choices}
    return set(namespace.task_names), subcommands


def missing_options(sources: dict[str, str]) -> list[str]:
    task_names, subcommands = _names()
    seen = scan_sources(sources, task_names, subcommands)
    missing = []
    for (command, option), spellings in expected_options().items():
        if (command, option) in ALLOWED_UNTESTED:
            continue
        if not any((command, spelling) in seen for spelling in spellings):
            missing.append(f"{command} {option}".strip() if option else f"{command} (never run)")
    return missing


def user_level_sources() -> dict[str, str]:
    return {
        path.name: path.read_text(encoding="utf-8")
        for path in sorted(TESTS.glob("test_*.py"))
        if path.name != Path(__file__).name
    }


# -- the tests -------------------------------------------------------------------------------------


def test_every_option_has_a_user_level_test():
    missing = missing_options(user_level_sources())
    assert not missing, (
        f"{len(missing)} option(s) no test in tests/test_*.py runs as a command "
        "(invoke TASK --option / piperack ... in a subprocess): " + ", ".join(missing)
    )


def test_the_allow_list_names_real_options_with_a_reason():
    options = expected_options()
    for key, reason in ALLOWED_UNTESTED.items():
        assert key in options, f"{key}: no such option (remove it from ALLOWED_UNTESTED)"
        assert len(reason) > 20, f"{key}: give the reason it cannot be tested"


SAMPLE = """
import pytest

OPTIONS = ["--network", "none"]

def test_direct(run_invoke, root):
    run_invoke(root, "pull", "sdist.tar.gz", "--sha256", "ab" * 32)
    fails(run_invoke(root, "pull", "x"), "pass --allow-conflicts to add it anyway")
    run_invoke(root, "docker-cmd", *OPTIONS, "--", "python", "--tag")
    run_invoke(root, "package", "pipelines.ingest", "-d", "out", "pull", "--quiet")

@pytest.mark.parametrize("args, message", [(["build-reqs", "--universal"], "x"), (["run", "-l", "NOPE"], "y")])
def test_cases(run_invoke, root, args, message):
    run_invoke(root, *args)

def helper(root, *args):
    return run_invoke(root, "airflow-test", *args, env={})

@pytest.fixture
def build(run_invoke):
    def _build(root, *args):
        return run_invoke(root, "docker-build", *args)
    return _build

@pytest.fixture
def built():
    yield {"root": "x", "options": ("--image", "tag:1", "--output", "out")}

def _options(state):
    return ["--tag", state["tag"], "--uid", "1234"]

def test_built(run_invoke, built):
    root, options = built["root"], built["options"]
    run_invoke(root, "airflow-dag", *options)
    run_invoke(root, "docker-build", *_options(built), "--gid", "5")

def test_helpers(root, build, venv):
    helper(root, "--date=2024-01-02")
    build(root, "--no-cache")
    subprocess.run([str(venv / "bin" / "piperack")])
    subprocess.run([str(venv / "bin" / "piperack"), "--version"])
    subprocess.run(["piperack", "new", "-f", "--no-input"])
    subprocess.run([sys.executable, "-m", "piperack", "update", "--ask"])
    for flag in ["--diff", "--check"]:
        subprocess.run(["invoke", "update-project", flag])
    shutil.which("piperack")
"""


def test_the_scanner_counts_an_option_only_where_a_command_line_gives_it_to_its_task():
    task_names, subcommands = _names()
    seen = scan_sources({"sample.py": SAMPLE}, task_names, subcommands)
    assert seen == {
        ("invoke pull", ""),
        ("invoke pull", "--sha256"),
        ("invoke pull", "--quiet"),  # given to pull, on the same line as package
        ("invoke docker-cmd", ""),
        ("invoke docker-cmd", "--network"),  # from a module constant; --tag after -- is the container's
        ("invoke package", ""),
        ("invoke package", "-d"),
        ("invoke build-reqs", ""),
        ("invoke build-reqs", "--universal"),
        ("invoke run", ""),
        ("invoke run", "-l"),
        ("invoke airflow-dag", ""),
        ("invoke airflow-dag", "--image"),  # from the dict the fixture yields
        ("invoke airflow-dag", "--output"),
        ("invoke docker-build", "--tag"),  # from the list the helper returns
        ("invoke docker-build", "--uid"),
        ("invoke docker-build", "--gid"),
        ("invoke airflow-test", ""),
        ("invoke airflow-test", "--date"),
        ("invoke docker-build", ""),
        ("invoke docker-build", "--no-cache"),
        ("invoke update-project", ""),
        ("invoke update-project", "--diff"),
        ("invoke update-project", "--check"),
        ("piperack", "(no command)"),
        ("piperack", "--version"),
        ("piperack new", ""),
        ("piperack new", "-f"),
        ("piperack new", "--no-input"),
        ("piperack update", ""),
        ("piperack update", "--ask"),
    }
    # an expected message mentioning --allow-conflicts is no run of it; which("piperack") is no command line
    missing = missing_options({"sample.py": SAMPLE})
    assert "invoke pull --allow-conflicts" in missing and "invoke package --quiet" in missing
    assert "invoke pull --sha256" not in missing and "piperack (no command)" not in missing
