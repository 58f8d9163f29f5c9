"""`invoke run` against hostile or careless configuration (issue 20, kinds 6, 7, 8 and 10), as a user
meets it: YAML bombs, values of the wrong shape, credentials in every form output can take, log
files that are links. A refusal is one line and leaves the project as it was."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.test_run import assert_one_line_error, pipeline_failed


def billion_laughs() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def interpolation_bomb() -> str:
    """Twenty levels, each four times the one before: 8 characters would become 8 TiB."""
    lines = ['l0: "xxxxxxxx"'] + [f"l{i}: " + '"' + f"${{l{i - 1}}}" * 4 + '"' for i in range(1, 21)]
    return "\n".join(lines) + "\n"


DEEP = "x: " + "[" * 50_000 + "]" * 50_000 + "\n"
BOMBS = {
    "billion-laughs": (billion_laughs(), "its aliases expand to more than 100000 values"),
    "50000-deep": (DEEP, "nested more than 100 levels deep"),
    "interpolations": (interpolation_bomb(), "l11: its interpolations expand to more than 16 MiB"),
}
CONF_FILES = [
    "conf/local/parameters/ingest.yml",
    "conf/base/catalog/ingest.yml",
    "conf/local/credentials.yml",
    "conf/local/logging.yml",
]


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text, encoding="utf-8")


@pytest.mark.parametrize("bomb", BOMBS, ids=list(BOMBS))
def test_yaml_bombs_in_every_file_the_runner_reads_are_one_line(project_copy, run_invoke, tree_hash, bomb):
    text, reason = BOMBS[bomb]
    for rel in CONF_FILES:
        original = (project_copy / rel).read_bytes() if (project_copy / rel).exists() else None
        write(project_copy, rel, text)
        before = tree_hash(project_copy)
        result = run_invoke(project_copy, "run")
        assert_one_line_error(result, f"error: {rel}: refused: {reason}")
        assert tree_hash(project_copy) == before  # no log file, no data
        if original is None:
            (project_copy / rel).unlink()
        else:
            (project_copy / rel).write_bytes(original)


def test_a_bomb_in_params_is_one_line(project_copy, run_invoke, tree_hash):
    before = tree_hash(project_copy)
    deep = run_invoke(project_copy, "run", "--params", "ingest.columns=" + "[" * 50_000 + "]" * 50_000)
    assert_one_line_error(deep, "error: --params 'ingest.columns': refused: nested more than 100 levels deep")
    levels = ["&a0 [x, x, x, x, x, x, x, x, x]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb = run_invoke(project_copy, "run", "--params", f"ingest.columns=[{', '.join(levels)}]")
    assert_one_line_error(
        bomb, "error: --params 'ingest.columns': refused: its aliases expand to more than 100000 values"
    )
    assert tree_hash(project_copy) == before


@pytest.mark.parametrize(
    "files, args, line",
    [
        (
            {"conf/local/parameters/ingest.yml": "columns: [city_name, country]\n"},
            [],
            "error: conf/local/parameters/ingest.yml: columns: expected a mapping (as in the files before), got a list",
        ),
        (
            {},
            ["--params", "ingest.required={city_name: string}"],
            "error: --params: required: expected a list (as in the files before), got a mapping",
        ),
        (
            {"conf/local/credentials.yml": "- token: abcdefgh\n"},
            [],
            "error: conf/local/credentials.yml: expected a mapping of keys to values, got a list",
        ),
        (
            {"conf/local/logging.yml": "handlers: [console]\n"},
            [],
            "error: conf/local/logging.yml: handlers: expected a mapping (as in the files before), got a list",
        ),
        (
            {"conf/local/logging.yml": "root:\n  handlers: console\n"},
            [],
            "error: conf/local/logging.yml: root.handlers: expected a list of handler names, got a string",
        ),
        (
            {"conf/local/logging.yml": "handlers:\n  file:\n    filename: [logs, run.log]\n"},
            [],
            "error: conf/local/logging.yml: handlers.file.filename: expected a path, got a list",
        ),
        ({}, ["--env", ""], "error: --env '': expected the name of a folder under conf/ (such as local or prod)"),
    ],
    ids=[
        "list-for-mapping",
        "params-mapping-for-list",
        "credentials-list",
        "handlers-list",
        "root-handlers-str",
        "filename-list",
        "empty-env",
    ],
)
def test_config_of_the_wrong_shape_is_one_line_naming_key_and_file(
    project_copy, run_invoke, tree_hash, files, args, line
):
    for rel, text in files.items():
        write(project_copy, rel, text)
    before = tree_hash(project_copy)
    assert_one_line_error(run_invoke(project_copy, "run", *args), line)
    assert tree_hash(project_copy) == before


@pytest.mark.parametrize(
    "params, reason",
    [
        ("required: city_name\n", "parameters key 'required': expected a list of column names, got a string"),
        ("columns: [city_name]\ntable: t\n", None),  # a list over base's mapping: the runner's merge says so
        ("timeout: soon\n", "parameters key 'timeout': expected a number, got a string"),
    ],
)
def test_the_example_names_the_key_and_the_shape_it_expects(project_copy, run_invoke, params, reason):
    write(project_copy, "conf/local/parameters/ingest.yml", params)
    result = run_invoke(project_copy, "run")
    if reason is None:
        assert_one_line_error(
            result,
            "error: conf/local/parameters/ingest.yml: columns: expected a mapping (as in the files before), got a list",
        )
    else:
        assert_one_line_error(result, pipeline_failed(f"{reason} (conf/<env>/parameters/ingest.yml)"))
    assert not (project_copy / "data" / "ingest.duckdb").exists()
    assert not (project_copy / "data" / "01_raw").exists()  # checked before anything was fetched


def test_a_catalog_path_leaving_the_project_is_refused(project_copy, run_invoke, tmp_path):
    write(project_copy, "conf/local/catalog/ingest.yml", "database: ../../outside.duckdb\n")
    result = run_invoke(project_copy, "run")
    assert_one_line_error(
        result,
        pipeline_failed(
            "catalog key 'database': '../../outside.duckdb' leaves the project; give an absolute path to use a "
            "folder outside it (conf/<env>/catalog/ingest.yml)"
        ),
    )
    assert not (project_copy.parent.parent / "outside.duckdb").exists()
    write(project_copy, "conf/local/catalog/ingest.yml", f"database: {tmp_path / 'elsewhere.duckdb'}\n")
    assert run_invoke(project_copy, "run").returncode == 0  # an absolute path is meant
    assert (tmp_path / "elsewhere.duckdb").is_file()


def test_a_short_credential_is_refused_by_key_in_one_line(project_copy, run_invoke, tree_hash):
    write(project_copy, "conf/local/credentials.yml", "warehouse:\n  user: analyst7\n  token: q9Z\n")
    before = tree_hash(project_copy)
    result = run_invoke(project_copy, "run")
    assert_one_line_error(
        result,
        "error: conf/local/credentials.yml: credentials key 'warehouse.token' is shorter than 6 characters: too "
        "short to keep out of logs safely (keep settings that are not secret in the catalog or parameters)",
    )
    assert "q9Z" not in result.stdout + result.stderr
    assert tree_hash(project_copy) == before


TOKEN = "tok en+é/&'x\"9"
KEY = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END KEY-----\n"
LEAKY_PIPELINE = """
import logging
import warnings


def run(params, catalog):
    url = catalog["url"]
    logging.getLogger("some.library").warning("connecting to %r", url)
    logging.getLogger("some.library").info("key %s", params["key"])
    for line in params["key"].splitlines():
        logging.getLogger("some.library").info("key line %s", line)
    warnings.warn(f"insecure {url}")
    raise RuntimeError(f"giving up on {url!r}: {params['key']!r}")
"""


def forms(secret: str) -> list[str]:
    """What a secret must never appear as: itself, URL-encoded, escaped, and each line of it."""
    found = [secret, quote(secret), quote(secret, safe=""), quote_plus(secret), repr(secret)[1:-1]]
    found += [json.dumps(secret)[1:-1], *(line for line in secret.splitlines() if len(line) > 5)]
    return found


def leaked(text: str) -> list[str]:
    return [form for secret in (TOKEN, KEY) for form in forms(secret) if form in text]


@pytest.mark.parametrize("debug", [False, True], ids=["one-line", "PIPERACK_DEBUG"])
def test_credentials_never_appear_in_any_form(project_copy, run_invoke, debug):
    write(project_copy, "conf/local/credentials.yml", json.dumps({"api": {"token": TOKEN, "key": KEY}}))
    assert run_invoke(project_copy, "new-pipeline", "leaky").returncode == 0
    write(project_copy, "src/demo_project/pipelines/leaky/pipeline.py", LEAKY_PIPELINE)
    write(project_copy, "conf/base/catalog/leaky.yml", "url: https://u:${credentials:api.token}@h.invalid/?t=1\n")
    write(project_copy, "conf/local/parameters/leaky.yml", "key: ${credentials:api.key}\n")
    env = {"PIPERACK_DEBUG": "1"} if debug else {}
    result = run_invoke(project_copy, "run", "--pipeline", "leaky", "--log-level", "DEBUG", env=env)
    assert result.returncode == 1
    logged = (project_copy / "logs" / "run.log").read_text(encoding="utf-8")
    assert leaked(result.stdout + result.stderr + logged) == []
    assert "WARNING some.library: connecting to 'https://u:***@h.invalid/?t=1'" in logged
    assert "INFO some.library: key line ***" in logged
    assert "WARNING py.warnings: " in logged and "UserWarning: insecure https://u:***@h.invalid/?t=1" in logged
    if debug:
        assert "Traceback" in result.stderr
        assert "RuntimeError: giving up on 'https://u:***@h.invalid/?t=1'" in result.stderr
    else:
        assert_one_line_error(
            result, pipeline_failed("RuntimeError: giving up on 'https://u:***@h.invalid/?t=1': '***'", "leaky")
        )


def test_urllib3_retry_warnings_and_undeclared_url_secrets_are_masked(project_copy, run_invoke):
    write(project_copy, "conf/local/credentials.yml", json.dumps({"api": {"token": TOKEN}}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: every try is refused and retried
        source = f"http://bob:pa55word-undeclared@127.0.0.1:{port}/x.csv?token=${{credentials:api.token}}&sig=s1gnature"
        write(project_copy, "conf/local/parameters/ingest.yml", f'source: "{source}"\nretries: 1\nbackoff: 0.01\n')
        result = run_invoke(project_copy, "run", "--log-level", "DEBUG")
    shown = f"http://bob:***@127.0.0.1:{port}/x.csv?token=***&sig=***"
    assert_one_line_error(result, pipeline_failed(f"cannot download {shown}: connection failed after 1 retries"))
    logged = (project_copy / "logs" / "run.log").read_text(encoding="utf-8")
    retry = [line for line in logged.splitlines() if "WARNING urllib3.connectionpool: Retrying (" in line]
    assert len(retry) == 1 and retry[0].endswith(": /x.csv?token=***&sig=***"), logged
    everything = result.stdout + result.stderr + logged
    assert leaked(everything) == [] and "pa55word" not in everything and "s1gnature" not in everything


def test_a_linked_log_file_is_never_written_through(project_copy, run_invoke, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (project_copy / "logs").mkdir(exist_ok=True)
    (project_copy / "logs" / "run.log").unlink(missing_ok=True)
    (project_copy / "logs" / "run.log").symlink_to(victim)
    result = run_invoke(project_copy, "run")
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "precious\n"
    assert (project_copy / "logs" / "run.log").is_symlink()
    warning = (
        "WARNING demo_project: logging: cannot write logs/run.log (logs/run.log is a symbolic link); "
        "logging to the console only"
    )
    assert warning in result.stderr
    assert "INFO demo_project: pipeline ingest: starting (env local)" in result.stderr  # the console still logs


def test_a_relative_log_file_never_leaves_the_project(project_copy, run_invoke, tmp_path):
    write(project_copy, "conf/local/logging.yml", "handlers:\n  file:\n    filename: ../escaped.log\n")
    result = run_invoke(project_copy, "run")
    assert result.returncode == 0, result.stderr
    assert not (project_copy.parent / "escaped.log").exists()
    assert (
        "WARNING demo_project: logging: cannot write ../escaped.log (a relative path leaving the project: give an "
        "absolute path to log outside it); logging to the console only" in result.stderr
    )
    write(project_copy, "conf/local/logging.yml", f"handlers:\n  file:\n    filename: {tmp_path / 'abs' / 'run.log'}\n")
    assert run_invoke(project_copy, "run").returncode == 0
    assert "pipeline ingest: done" in (tmp_path / "abs" / "run.log").read_text()
