"""Prune what the answers left out, then say what to do next."""
import shutil
from pathlib import Path

PACKAGE = {{ cookiecutter.python_package | py_string }}
PYTHON_VERSION = {{ cookiecutter.python_version | py_string }}
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
    print(f"\nCreated {root.name}/. Next steps:\n")
    print(f"  cd {root.name}")
    print(f"  python{PYTHON_VERSION} -m venv .venv && . .venv/bin/activate")
    print("  pip install -r requirements-dev.txt -e .")
    if INCLUDE_EXAMPLE:
        print("  invoke run            # runs the example pipeline 'ingest' on samples/cities.csv")
    else:
        print("  invoke new-pipeline my_pipeline")
    print("  invoke test")
    print("  invoke --list         # package, pull, build-reqs, docker-build, docker-run, …\n")


main()
