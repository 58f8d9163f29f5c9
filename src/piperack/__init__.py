"""piperack: bake data-pipeline monorepos, and the engine behind their invoke tasks.

``piperack.tasks`` is the invoke collection a generated project loads; ``piperack.cli`` is the
``piperack`` command (``new``, ``--version``). One module per verb (package, pull, buildreqs,
docker, scaffold, bake) over a few shared cores (project, options, errors, ui, fsutil, sdist,
archive, requirements, rewrite): docs/architecture.md has the map. Only the standard library is
imported at module top, so `invoke --list` stays fast; third-party imports live in functions.
"""


def __getattr__(name: str):
    if name == "__version__":  # pyproject.toml's [project] version is the one place it is written
        from importlib.metadata import version

        return version("piperack")
    raise AttributeError(f"module 'piperack' has no attribute {name!r}")
