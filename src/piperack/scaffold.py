"""`invoke new-pipeline NAME`: a new modular pipeline in its places (code, parameters, catalog, tests),
with passing tests; its code names the file and key when a parameters or catalog key is missing."""

from __future__ import annotations

from pathlib import Path
from string import Template

from . import ui
from .errors import PiperackError
from .project import Project, check_identifier

PIPELINE = '''"""The $name pipeline. The runner calls run() with its parameters and catalog:
conf/base/parameters/$name.yml and conf/base/catalog/$name.yml, with conf/<env>/ merged over them."""

from __future__ import annotations

import logging
from pathlib import Path

from $package.pipelines.$name import nodes

log = logging.getLogger(__name__)
NAME = __name__.split(".")[-2]  # this pipeline's folder: "$name", or the name it was pulled under


class ConfigError(Exception):
    """A key this pipeline needs is missing from its configuration: the message names the file."""


def _require(config: dict, key: str, where: str):
    if key not in config or config[key] in (None, ""):
        raise ConfigError(f"missing {where} key {key!r} (conf/<env>/{where}/{NAME}.yml)")
    return config[key]


def run(params: dict, catalog: dict) -> dict:
    greeting = _require(params, "greeting", "parameters")
    output = Path(_require(catalog, "greeting", "catalog"))
    result = nodes.greet(greeting)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(result + "\\n", encoding="utf-8")
    log.info("$name: %s (written to %s)", result, output)
    return {"result": result, "output": str(output)}
'''

NODES = '''"""The steps of the $name pipeline: plain functions, easy to test."""


def greet(greeting: str) -> str:
    return f"{greeting} from $name"
'''

INIT = '''"""The $name pipeline."""

__version__ = "0.1.0"
'''

REQUIREMENTS = """# What this pipeline needs (one requirement a line); `invoke package` makes them its dependencies.
"""

PARAMETERS = """# Parameters of the $name pipeline (override in conf/local/parameters/$name.yml).
greeting: hello
"""

CATALOG = """# Where the $name pipeline's data lives, paths relative to the project root (override in
# conf/local/catalog/$name.yml). A path another pipeline's catalog names too is data they share.
greeting: data/$name/greeting.txt
"""

TEST = """import pytest

from $package.pipelines.$name import nodes, pipeline


def test_greet():
    assert nodes.greet("hi") == "hi from $name"


def test_run_uses_the_parameters_and_the_catalog(tmp_path):
    output = tmp_path / "greeting.txt"
    assert pipeline.run({"greeting": "hey"}, {"greeting": str(output)}) == {
        "result": "hey from $name",
        "output": str(output),
    }
    assert output.read_text() == "hey from $name\\n"


def test_a_missing_key_names_the_file_and_the_key():
    message = "missing catalog key 'greeting' (conf/<env>/catalog/$name.yml)"
    with pytest.raises(pipeline.ConfigError) as raised:
        pipeline.run({"greeting": "hi"}, {})
    assert str(raised.value) == message
"""


def plan(project: Project, name: str) -> dict[Path, str]:
    """Every file the new pipeline needs, with its text; refuses names that are taken or invalid."""
    check_identifier(name, what="pipeline name")
    if name.startswith("_"):
        raise PiperackError(f"invalid pipeline name {name!r}: it must not start with '_'")
    fields = {"name": name, "package": project.package}
    code = project.module_dir(f"pipelines.{name}")
    tests = project.tests_dir(f"pipelines.{name}")
    params = project.conf / "base" / "parameters" / f"{name}.yml"
    catalog = project.conf / "base" / "catalog" / f"{name}.yml"
    taken = [p for p in (code, tests, params, catalog) if p.exists()]
    if taken:
        listed = ", ".join(str(p.relative_to(project.root)) for p in taken)
        raise PiperackError(f"pipeline {name!r} already exists: {listed}")
    fill = lambda text: Template(text).substitute(fields)  # noqa: E731
    files = {
        code / "__init__.py": fill(INIT),
        code / "pipeline.py": fill(PIPELINE),
        code / "nodes.py": fill(NODES),
        code / "requirements.txt": fill(REQUIREMENTS),
        params: fill(PARAMETERS),
        catalog: fill(CATALOG),
        tests / "__init__.py": "",
        tests / "test_pipeline.py": fill(TEST),
    }
    # Test folders are packages all the way up, so pytest imports them by their full name.
    folder = tests.parent
    while folder != project.tests.parent:
        if not (folder / "__init__.py").exists():
            files[folder / "__init__.py"] = ""
        folder = folder.parent
    return files


def create_pipeline(project: Project, name: str) -> list[Path]:
    """Write the new pipeline's files in one write session: all of them, or none."""
    from .fsutil import transaction, write_session

    with write_session(project.root, "new-pipeline"):
        files = plan(project, name)
        with transaction(project.root) as tx:
            for path, text in files.items():
                tx.create(path.relative_to(project.root), text.encode("utf-8"))
    ui.info(f"Created pipeline {name!r}:")
    for path in files:
        ui.info(f"  {path.relative_to(project.root)}")
    ui.info(f"Run it with `invoke run --pipeline {name}`; test it with `invoke test`.")
    return list(files)
