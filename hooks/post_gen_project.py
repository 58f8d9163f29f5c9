"""Prune what the answers left out, then say what to do next."""
import os
import shutil
from pathlib import Path

PACKAGE = {{ cookiecutter.python_package | py_string }}
INCLUDE_EXAMPLE = {{ "True" if cookiecutter.include_example else "False" }}

EXAMPLE_PATHS = [
    f"src/{PACKAGE}/pipelines/ingest",
    "src/tests/pipelines/ingest",
    "conf/base/parameters/ingest.yml",
    "conf/base/catalog/ingest.yml",
    "conf/prod/parameters",
    "samples",
]


def main() -> None:
    root = Path.cwd()
    # pip writes bytecode for every .py file of the piperack it installs, the template's too: the
    # __pycache__ folders it left in the template are not part of a new project.
    for cache in sorted(root.rglob("__pycache__"), reverse=True):
        if cache.is_dir() and not cache.is_symlink():
            shutil.rmtree(cache)
    if not INCLUDE_EXAMPLE:
        for rel in EXAMPLE_PATHS:
            path = root / rel
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    lines = [
        f"\nCreated {root.name}/. Next steps:\n",
        f"  cd {root.name}",
        "  python3 -m venv .venv && . .venv/bin/activate",
        "  pip install -r requirements-dev.txt -e .",
        "  invoke run            # runs the example pipeline 'ingest' on samples/cities.csv"
        if INCLUDE_EXAMPLE
        else "  invoke new-pipeline my_pipeline",
        "  invoke test",
        "  invoke --list         # package, pull, build-reqs, docker-build, docker-run, …\n",
    ]
    staging = os.environ.get("PIPERACK_NEW_STAGING")
    if staging:  # `piperack new` renders aside first: it says this once the project is in place
        Path(staging, "next-steps.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        print("\n".join(lines))


main()
