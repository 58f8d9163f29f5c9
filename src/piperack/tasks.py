"""The invoke tasks of a piperack project, as one collection: ``namespace``.

A project's tasks.py loads it (``from piperack.tasks import namespace``); `invoke --list` shows
the tasks and `invoke --help TASK` explains each option. Each task is a thin command-line surface:
it parses options and turns the engine's user errors into one line; the work happens in the verb
modules, imported inside the task so that `invoke --list` stays fast.
"""

from __future__ import annotations

import sys

from .errors import exit_on_signals

if sys.argv and sys.argv[0].rpartition("/")[2] in {"invoke", "inv"}:  # the invoke program, not a test
    exit_on_signals()

from contextlib import contextmanager  # noqa: E402 - after the handlers: a Ctrl-C from here on is one line
from pathlib import Path  # noqa: E402

from invoke import Collection, task  # noqa: E402
from invoke.exceptions import Exit  # noqa: E402

from .options import (  # noqa: E402
    RUN_ENV,
    UPDATE_HELP,
    VIZ_HELP,
    PackageOptions,
    PublishOptions,
    PullOptions,
    UpdateOptions,
)


def _before_exit() -> None:
    from .workers import freeze_heap_for_exit

    freeze_heap_for_exit()


@contextmanager
def user_errors():
    """The error funnel (errors.funnel) for a task: one line on stderr and the exit status, no
    traceback; SIGTERM stops the task like Ctrl-C. Wrap the whole body, imports included."""
    from .errors import funnel

    with funnel(lambda code: Exit(code=code)):
        yield


def project(c):
    """The project whose tasks.py invoke loaded (else the one holding the working directory)."""
    from .project import find_project

    start = getattr(c.config, "_project_prefix", None) or Path.cwd()
    with user_errors():
        return find_project(start)


def _exit(code: int) -> None:
    if code:
        raise Exit(code=code)


@task(
    iterable=["pipeline"],
    help={
        "pipeline": "Pipeline to run (repeat for several). Default: all. They run in conf/base/pipelines.yml's "
        "order (depends_on), ties by name; a failure skips the pipelines depending on it.",
        "with-deps": "Also run what the --pipeline ones depend on (conf/base/pipelines.yml), first.",
        "env": "Config environment: conf/<env>/ is deep-merged over conf/base/. Default: local.",
        "params": 'Parameter overrides for this run, e.g. --params "ingest.timeout=5,ingest.source=data/x.csv" '
        "(<pipeline>.<key>=<value>, values typed as YAML). A key the parameters lack is refused; "
        "+ingest.note=x adds one on purpose.",
        "log-level": "DEBUG, INFO, WARNING, ERROR or CRITICAL. Default: conf/base/logging.yml's (INFO).",
    },
)
def run(c, pipeline=None, env=RUN_ENV, params=None, log_level=None, with_deps=False):
    """Run the project's pipelines in their declared order (same as `python -m <package> run`).

    Each run is recorded as one JSON line in logs/runs.jsonl. Ctrl-C and SIGTERM reach the
    pipeline; the exit status is the runner's (130, 143 when stopped)."""
    with user_errors():
        from . import commands

        code = commands.run(project(c), pipeline or [], env, params=params, log_level=log_level, with_deps=with_deps)
    _exit(code)


@task(help={"args": "Extra pytest arguments, e.g. --args='-k ingest -x'."})
def test(c, args=""):
    """Run the project's tests (src/tests) with pytest."""
    import shlex

    with user_errors():
        from . import commands

        code = commands.test(project(c), shlex.split(args))
    _exit(code)


@task(help={"fix": "Fix what ruff can fix and reformat the files, instead of only reporting."})
def lint(c, fix=False):
    """Lint and check the formatting of the project's Python with ruff (configured in pyproject.toml).

    Exits non-zero listing what to change; `--fix` applies ruff's safe fixes and its formatter.
    """
    with user_errors():
        from . import commands

        code = commands.lint(project(c), fix)
    if code > 128:
        raise Exit(code=code)
    if code:
        raise Exit("error: ruff found problems (see above); `invoke lint --fix` fixes what it can", code=1)


@task(
    name="new-pipeline",
    help={"name": "The new pipeline's name: a Python identifier not used by another pipeline."},
)
def new_pipeline(c, name):
    """Create a modular pipeline: code, parameters and a passing test, in their three places."""
    with user_errors():
        from . import scaffold

        scaffold.create_pipeline(project(c), name)


def _optional_with_all(positional: str):
    """A Task class whose positional argument may be left out when --all is given.

    invoke has no optional positional arguments; `package` and `pull` take either one module or
    source, or --all (their manifest).
    """
    from invoke import Task
    from invoke.parser import Argument

    class OptionalPositional(Argument):
        @property
        def value(self):
            value = self._value if self._value is not None else self.default
            return "" if value is None and self.all_flag.value else value

        @value.setter
        def value(self, arg):
            self.set_value(arg, cast=True)

    class PositionalOrAll(Task):
        def get_arguments(self, *args, **kwargs):
            arguments = super().get_arguments(*args, **kwargs)
            by_name = {a.name: a for a in arguments}
            by_name[positional].__class__ = OptionalPositional
            by_name[positional].all_flag = by_name["all"]
            return arguments

    return PositionalOrAll


# --- package ---
@task(
    klass=_optional_with_all("module"),
    positional=["module"],
    help={
        "module": "Module path under the project package, e.g. pipelines.ingest or utils.cleaning.",
        "all": "Package every entry of [tool.piperack.package] in pyproject.toml, each with its own options.",
        "alias": "Package it under this name (its absolute imports in code and tests are rewritten to it).",
        "destination": "Folder for the .tar.gz (relative paths: to the project root). Default: dist.",
        "env": "Config environment: its parameters (conf/<env>/parameters/), deep-merged over conf/base's, go in. "
        "Default: base.",
        "quiet": "No progress output (results and errors still print); progress shows only on a terminal anyway.",
    },
)
def package(c, module=None, all=False, alias=None, destination=None, env=None, quiet=False):
    """Package a module as a micro-package sdist: code, parameters, tests and requirements.

    Writes <destination>/<name>-<version>.tar.gz (byte-identical for the same inputs), prints its
    path, size and sha256 and updates <destination>/SHA256SUMS. `pip install` the file, or pull it
    into another project (`invoke pull`, `kedro micropkg pull`). Nothing is written on an error.
    """
    with user_errors():
        from . import package as engine
        from . import ui

        ui.QUIET = quiet
        options = PackageOptions(module=module, all_=all, alias=alias, destination=destination, env=env)
        engine.package(project(c), options)
    _before_exit()


# --- pull ---
@task(
    klass=_optional_with_all("source"),
    positional=["source"],
    auto_shortflags=False,  # long options only: an automatic -h for --sha256 would read as help
    help={
        "source": "A .tar.gz path, an fsspec URL (file://, https://, s3://, gcs://, …) or a package name "
        "with an optional version range from a package index (ingest==0.2, 'shared~=0.1', 'shared>=0.2,<1'). "
        "With --upgrade: the pulled module (its name as pulled) or its package name.",
        "all": "Pull every entry of [tool.piperack.pull] in pyproject.toml (one transaction); entries already "
        "pulled are kept, recorded ones missing here come back at their recorded version.",
        "alias": "Module name to pull it as (imports and parameter files are renamed).",
        "destination": "Module path under the project package to pull into. Default: where it was "
        "packaged from (recorded in the sdist), else pipelines.",
        "env": "Config environment for the parameters: conf/<env>/parameters/. Default: base.",
        "fs-args": "YAML file of fsspec filesystem options (endpoint_url, key/secret, "
        "client_kwargs.headers, …); its values never appear in output.",
        "force": "Replace an existing module (code, tests, parameter files) of that name wholly.",
        "dry-run": "Print every file that would be written or changed; write nothing.",
        "sha256": "Refuse the archive unless its sha256 is this hex digest.",
        "index-url": "Package index (simple API) for a package name: the only one consulted (no extra "
        "index, no find-links). Default: pip's configuration.",
        "allow-conflicts": "Add a requirement even when no version satisfies both it and requirements.in.",
        "allow-direct-references": "Accept requirements that are direct references (name @ URL, git+…).",
        "quiet": "No progress output (results and errors still print); progress shows only on a terminal anyway.",
        "pre": "Let a version range take pre-releases (0.3.0rc1); without it they are never chosen.",
        "upgrade": "Merge a newer version into the pulled module NAME, keeping the project's edits (three-way "
        "merge; conflicts marked inline, exit 1; the record moves only on success). With --all: every "
        "pulled entry of [tool.piperack.pull], to the newest its range allows.",
        "to": "With --upgrade: this version (or a .tar.gz path or URL) instead of the newest its range allows.",
        "diff": "With --upgrade: show the merge as a unified diff; write nothing.",
        "resolved": "With --upgrade NAME --to VERSION: after resolving an upgrade's conflicts, record VERSION "
        "(and its requirements) without merging again; refused while a conflict marker is left.",
        "allow-dirty": "With --upgrade: merge even into files that have uncommitted changes (refused by "
        "default, as update-project refuses: commit or stash them first).",
    },
)
def pull(
    c,
    source=None,
    all=False,
    alias=None,
    destination=None,
    env=None,
    fs_args=None,
    force=False,
    dry_run=False,
    sha256=None,
    index_url=None,
    allow_conflicts=False,
    allow_direct_references=False,
    quiet=False,
    pre=False,
    upgrade=False,
    to=None,
    diff=False,
    resolved=False,
    allow_dirty=False,
):
    """Pull a micro-package into this project: code, parameters and tests in their places.

    Checks everything first and writes nothing unless the whole pull can complete; requirements
    are appended to requirements.in (then run `invoke build-reqs`). Nothing from the package is
    run. Archives unpacking to more than 200 MB are refused ($PIPERACK_PULL_MAX_BYTES, e.g. 1G,
    changes the limit). Each pull is recorded in pyproject.toml [tool.piperack.pulled], the lock
    `--all` installs from: entries already pulled are kept, recorded ones install exactly their
    recorded version (sha256 checked), new ones the newest their range allows.
    `--upgrade NAME` merges a newer version into a pulled module, keeping the team's edits.
    """
    with user_errors():
        from . import pull as engine
        from . import ui

        ui.QUIET = quiet
        options = PullOptions(
            source=source,
            all_=all,
            alias=alias,
            destination=destination,
            env=env,
            fs_args=fs_args,
            force=force,
            dry_run=dry_run,
            sha256=sha256,
            index_url=index_url,
            allow_conflicts=allow_conflicts,
            allow_direct_references=allow_direct_references,
            pre=pre,
            upgrade=upgrade,
            to=to,
            diff=diff,
            resolved=resolved,
            allow_dirty=allow_dirty,
        )
        engine.pull(options, project=project(c))
    _before_exit()


# --- publish ---
@task(
    auto_shortflags=False,
    help={
        "repository-url": "Upload endpoint of the package index (legacy upload API: pypiserver, devpi, Nexus, "
        "Artifactory, GitLab). Default: [tool.piperack.publish] repository-url, else $TWINE_REPOSITORY_URL.",
        "index-url": "Its simple index, read to see which versions are there. Default: [tool.piperack.publish] "
        "index-url, else <repository-url>/simple/.",
        "dry-run": "Say what would be uploaded (the index is read); upload nothing.",
        "quiet": "No progress output (results and errors still print); progress shows only on a terminal anyway.",
    },
)
def publish(c, repository_url=None, index_url=None, dry_run=False, quiet=False):
    """Upload the micro-packages `invoke package` made (dist/ and the manifest's destinations) to a package index.

    A version already on the index is never replaced: the same file is skipped, another file refuses the
    publish before anything is sent. Credentials: TWINE_USERNAME/TWINE_PASSWORD, the ~/.pypirc section
    whose repository is the URL, or keyring; never printed. Pull the packages back by name and version
    range (`invoke pull "shared~=0.1" --index-url …`).
    """
    with user_errors():
        from . import publish as engine
        from . import ui

        ui.QUIET = quiet
        options = PublishOptions(repository_url=repository_url, index_url=index_url, dry_run=dry_run)
        engine.publish(project(c), options)


@task(
    help={
        "check": "Exit 1 when a pulled pipeline is behind (its range allows a newer version) or its index could "
        "not be asked (for CI).",
    },
)
def outdated(c, check=False):
    """For each pulled pipeline: its package, the recorded version, the newest its range allows, the newest.

    Asks the index each one was pulled from (one request per package, all at once, within
    $PIPERACK_OUTDATED_TIMEOUT seconds, default 30). Pipelines pulled from a file or URL cannot be checked.
    `invoke pull --upgrade NAME` merges a newer version in, keeping local edits.
    """
    with user_errors():
        from . import outdated as engine

        engine.outdated(project(c), check=check)


# --- build-reqs ---
@task(
    name="build-reqs",
    iterable=["upgrade_package"],
    help={
        "check": "Exit non-zero if requirements.txt is stale against requirements.in; write nothing (for CI).",
        "upgrade": "Re-pin everything to the newest versions allowed (default: keep current pins that still fit).",
        "upgrade-package": "Re-pin this package to its newest allowed version (repeat for several).",
        "generate-hashes": "Add --hash lines for every pin (pip then installs in hash-checking mode).",
        "python-version": "Resolve for Python X.Y instead of the running one (uv only).",
        "universal": "One file with markers for every platform and Python version (uv only).",
        "resolver": "uv or pip-tools. Default: uv if installed, else pip-tools' pip-compile.",
        "args": "Extra resolver arguments, e.g. --args='--index-url https://my.index/simple'.",
        "quiet": "No progress output (results and errors still print); progress shows only on a terminal anyway.",
    },
)
def build_reqs(
    c,
    check=False,
    upgrade=False,
    upgrade_package=None,
    generate_hashes=False,
    python_version=None,
    universal=False,
    resolver=None,
    args="",
    quiet=False,
):
    """Pin requirements.txt from requirements.in (uv, or pip-tools' pip-compile).

    requirements.txt is replaced only after a successful compile; an unresolvable set leaves
    both files as they were. A missing requirements.in is first created from requirements.txt's
    top-level requirements.
    """
    import shlex

    with user_errors():
        from . import buildreqs, ui

        ui.QUIET = quiet
        buildreqs.build_reqs(
            project(c),
            resolver=resolver,
            upgrade=upgrade,
            upgrade_packages=upgrade_package or [],
            generate_hashes=generate_hashes,
            python_version=python_version,
            universal=universal,
            extra_args=shlex.split(args),
            check=check,
        )


# --- docker ---
@task(
    name="docker-build",
    iterable=["build_arg"],
    help={
        "tag": "Image tag. Default: <project name>:latest.",
        "base-image": "Base image (sets the Dockerfile's BASE_IMAGE). "
        "Default: the Dockerfile's, python:<version>-slim.",
        "uid": "uid of the image's non-root user. Default: yours (1000 if you are root).",
        "gid": "gid of the image's user. Default: yours (1000 if you are root).",
        "build-arg": "Extra build argument KEY=VALUE (repeat for several).",
        "no-cache": "Build every layer afresh and re-download the wheelhouse.",
        "docker-args": "Extra `docker build` arguments, e.g. --docker-args='--pull --progress plain'.",
        "quiet": "No wheelhouse download progress (docker's own build output still streams).",
    },
)
def docker_build(
    c, tag=None, base_image=None, uid=None, gid=None, build_arg=None, no_cache=False, docker_args="", quiet=False
):
    """Build the project's image from docker/Dockerfile, dependencies from a local wheelhouse.

    First fills .docker/wheelhouse/ with wheels for the base image's Python and platform (reused
    until requirements.txt changes), so `docker build` itself needs no network; its output streams.
    """
    with user_errors():
        from . import docker, ui

        ui.QUIET = quiet
        code = docker.build(
            project(c),
            tag=tag,
            base_image=base_image,
            uid=uid,
            gid=gid,
            build_args=build_arg,
            no_cache=no_cache,
            docker_args=docker_args,
        )
    _exit(code)


@task(
    name="docker-run",
    iterable=["pipeline"],
    help={
        "pipeline": "Pipeline to run (repeat for several). Default: all.",
        "env": "Config environment merged over conf/base (conf/local is mounted read-only). Default: local.",
        "tag": "Image tag. Default: <project name>:latest.",
        "network": "Container network, e.g. none or host. Default: Docker's default.",
        "docker-args": "Extra `docker run` arguments, e.g. --docker-args='-e TOKEN --memory 2g'.",
    },
)
def docker_run(c, pipeline=None, env=None, tag=None, network=None, docker_args=""):
    """Run the pipelines in a container: data/ mounted read-write, conf/local read-only, as you.

    The container is removed afterwards; its exit code is this task's.
    """
    with user_errors():
        from . import docker

        code = docker.run(project(c), pipelines=pipeline, env=env, tag=tag, network=network, docker_args=docker_args)
    _exit(code)


@task(
    name="docker-cmd",
    help={
        "tag": "Image tag. Default: <project name>:latest.",
        "network": "Container network, e.g. none or host. Default: Docker's default.",
        "docker-args": "Extra `docker run` arguments.",
    },
)
def docker_cmd(c, tag=None, network=None, docker_args=""):
    """Run any command in the image, with docker-run's mounts and user: invoke docker-cmd -- CMD [ARGS…]."""
    import shlex

    # invoke joins the words after `--` with spaces; take them from argv to keep their quoting.
    command = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else shlex.split(c.remainder)
    with user_errors():
        from . import docker

        code = docker.cmd(project(c), command, tag=tag, network=network, docker_args=docker_args)
    _exit(code)


# --- update-project ---


@task(name="update-project", help=UPDATE_HELP, auto_shortflags=False)
def update_project(
    c, check=False, dry_run=False, diff=False, from_=None, from_version=None, allow_dirty=False, ask=False
):
    """Merge the installed piperack's template into this project, keeping the team's edits.

    Files only the template changed are updated, files only the team changed are kept, files both
    changed are merged line by line (conflicts marked inline, exit 1). Pipelines, conf/, data/ and
    requirements.txt are never touched. All writes happen at the end, or none. See docs/updating.md.
    """
    with user_errors():
        from . import update as engine

        options = UpdateOptions(
            check=check,
            dry_run=dry_run,
            diff=diff,
            from_source=from_,
            from_version=from_version,
            allow_dirty=allow_dirty,
            ask=ask,
        )
        engine.update(project(c), options)


# --- airflow ---

AIRFLOW_HELP = {
    "target": "docker (default: DockerOperator on a Docker engine, docker-run's mounts and user) or kubernetes "
    "(KubernetesPodOperator; namespace, service account, resources, secret, volume from conf airflow.yml).",
    "pipeline": "Pipeline to include (repeat for several). Default: all; depends_on on a left-out one is dropped.",
    "env": "Config environment: conf/<env>/airflow.yml is deep-merged over conf/base/airflow.yml and the tasks "
    "run with --env <env>. Default: local.",
    "image": "Image the tasks run, e.g. registry.example.com/team/demo:1.0 for kubernetes. Default: airflow.yml "
    "image, else <project name>:latest (docker-build's tag).",
    "network": "docker target: the containers' network, e.g. none or host (as docker-run --network). "
    "Default: airflow.yml docker.network, else Docker's default.",
    "output": "Folder of the DAG file <package>.py (relative paths: to the project root). Default: airflow/dags.",
}


@task(
    name="airflow-dag",
    iterable=["pipeline"],
    auto_shortflags=False,
    help=AIRFLOW_HELP
    | {
        "check": "Write nothing; exit 1 naming what differs when the file on disk is stale against the config "
        "and pipelines (for CI).",
    },
)
def airflow_dag(c, target="docker", pipeline=None, env=RUN_ENV, image=None, network=None, output=None, check=False):
    """Write the Airflow DAG running each pipeline as one task in the project's image.

    One file, airflow/dags/<package>.py, for Airflow 3 (airflow.sdk), settings from conf/base/airflow.yml
    (schedule, retries, order via depends_on, ...). It imports only Airflow, its providers and the
    standard library, and the same inputs give the same bytes. See docs/airflow.md.
    """
    with user_errors():
        from . import airflow as engine

        engine.airflow_dag(
            project(c),
            target=target,
            env=env,
            pipelines=pipeline,
            image=image,
            network=network,
            output=output,
            check=check,
        )


@task(
    name="airflow-test",
    iterable=["pipeline"],
    auto_shortflags=False,
    help=AIRFLOW_HELP
    | {
        "date": "Logical date of the test run (YYYY-MM-DD or an ISO date-time). Default: now.",
        "conf": 'The run\'s conf, a JSON object, as `airflow dags trigger --conf` takes it; its "params" '
        'reach the pipelines as --params does, e.g. --conf \'{"params": {"ingest.table": "towns"}}\'.',
        "venv": "Airflow virtualenv to use (apache-airflow 3.3 + the docker and cncf-kubernetes providers). Default: "
        "$PIPERACK_AIRFLOW_VENV, else one made once under ~/.cache/piperack-airflow/.",
    },
)
def airflow_test(
    c,
    target="docker",
    pipeline=None,
    env=RUN_ENV,
    image=None,
    network=None,
    output=None,
    date=None,
    venv=None,
    conf=None,
):
    """Run the DAG file once with a real Airflow: import check, then `airflow dags test`.

    Takes airflow-dag's options and refuses a missing or stale file. Airflow lives in its own cached
    virtualenv with SQLite metadata in a temporary AIRFLOW_HOME; docker tasks run on the local Docker
    engine (build the image first). For --target kubernetes, each task's pod is validated against the
    Kubernetes API schema instead (no cluster). Exits non-zero unless every task succeeded.
    """
    with user_errors():
        from . import airflow as engine

        code = engine.airflow_test(
            project(c),
            target=target,
            env=env,
            pipelines=pipeline,
            image=image,
            network=network,
            output=output,
            date=date,
            venv=venv,
            conf=conf,
        )
    _exit(code)


# --- viz ---


@task(help=VIZ_HELP, auto_shortflags=False)
def viz(c, output=None, format="html", env=RUN_ENV):
    """Draw the pipelines: their datasets, the declared order and the last run's status and duration.

    html: one page (inline CSS, SVG and script; it loads nothing, so it opens from disk or as a CI
    artifact); mermaid: `flowchart LR` text to paste in a README or pull request. Reads
    conf/base/pipelines.yml, the catalogs and logs/runs.jsonl; writes nothing else.
    """
    with user_errors():
        from . import ui
        from . import viz as engine

        where = project(c)
        written = engine.viz(where, output=output, fmt=format, env=env)
        if written is not None:
            ui.info(f"wrote {ui.shown(where.label(written))}")


namespace = Collection(
    run,
    test,
    lint,
    new_pipeline,
    package,
    pull,
    publish,
    outdated,
    build_reqs,
    docker_build,
    docker_run,
    docker_cmd,
    update_project,
    airflow_dag,
    airflow_test,
    viz,
)
