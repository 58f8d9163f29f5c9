"""The project's tasks: `invoke --list` shows them, `invoke --help TASK` explains each option.

They come from the piperack library, pinned in requirements-dev.txt. Add your own next to them:

    from invoke import task

    @task(help={"keep-data": "Keep the DuckDB files in data/."})
    def clean(c, keep_data=False):
        '''Remove build output (dist/) and the pipelines' DuckDB files.'''
        c.run("rm -rf dist" if keep_data else "rm -rf dist data/*.duckdb")

    namespace.add_task(clean)
"""

try:
    from piperack.tasks import namespace
except ModuleNotFoundError as exc:
    if exc.name != "piperack":
        raise
    raise SystemExit(
        "error: piperack is not installed in this environment: run `pip install -r requirements-dev.txt`"
    ) from None

__all__ = ["namespace"]
