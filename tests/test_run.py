"""`invoke run` and `invoke new-pipeline` in a baked project, as a user runs them."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from scripts import kitlib


def rows(database: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(f'SELECT * FROM "{table}" ORDER BY city_name').fetchall()


def assert_one_line_error(result, line: str) -> None:
    """The run failed (exit 1) with exactly ``line`` as its one error line, and no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert errors == [line], result.stderr


def pipeline_failed(reason: str, name: str = "ingest") -> str:
    """The runner's line for a pipeline that raised: its reason, then where the traceback is."""
    return f"error: pipeline {name!r} failed: {reason} (set PIPERACK_DEBUG=1 for the traceback)"


def test_run_loads_the_sample_into_duckdb(project_copy, run_invoke):
    result = run_invoke(project_copy, "run")
    assert result.returncode == 0, result.stderr
    table = rows(project_copy / "data" / "ingest.duckdb", "cities")
    assert len(table) == 22
    by_city = {r[0]: r for r in table}
    assert by_city["Berlin"][1:4] == ("Germany", 3644826, 891.8)
    assert len({r[0] for r in table}) == 22  # duplicates dropped
    assert not {"Atlantis", "Nowhere", "Athens"} & {r[0] for r in table}  # invalid rows dropped
    log = result.stderr
    assert "transform: 27 rows read, 3 invalid dropped, 2 duplicates dropped, 22 kept" in log
    assert "load: 22 rows into cities" in log
    with duckdb.connect(str(project_copy / "data" / "ingest.duckdb"), read_only=True) as con:
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='cities'"
            ).fetchall()
        )
    assert types["city_name"] == types["country"] == "VARCHAR"
    assert types["population"] == "BIGINT" and types["area_km2"] == "DOUBLE"
    assert types["founded"].startswith("TIMESTAMP")


def test_python_m_package_run_is_the_same_runner(project_copy, venv, user_env):
    env = user_env(PYTHONPATH=str(project_copy / "src"))
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "demo_project", "run", "--pipeline", "ingest"],
        cwd=project_copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert len(rows(project_copy / "data" / "ingest.duckdb", "cities")) == 22


def test_conf_local_overrides_base_and_env_merges_over_base(project_copy, run_invoke):
    local = project_copy / "conf" / "local" / "parameters"
    local.mkdir(parents=True)
    (local / "ingest.yml").write_text("table: towns\n")
    assert run_invoke(project_copy, "run").returncode == 0
    assert len(rows(project_copy / "data" / "ingest.duckdb", "towns")) == 22

    prod = project_copy / "conf" / "prod"
    (prod / "catalog").mkdir(parents=True)
    (prod / "catalog" / "ingest.yml").write_text("database: data/prod.duckdb\n")
    (prod / "parameters").mkdir(exist_ok=True)
    source = (project_copy / "samples" / "cities.csv").as_uri()
    (prod / "parameters" / "ingest.yml").write_text(f"source: {source}\nrequired: [city_name]\n")
    result = run_invoke(project_copy, "run", "--env", "prod")
    assert result.returncode == 0, result.stderr
    # conf/local is not part of env prod: the table name comes from base.
    # Only city_name is required in prod: Atlantis (no country) and Nowhere (population "n/a", a
    # standard missing-value marker) keep their rows; Athens' bad date still makes its row invalid.
    kept = {r[0] for r in rows(project_copy / "data" / "prod.duckdb", "cities")}
    assert len(kept) == 24 and {"Atlantis", "Nowhere"} <= kept and "Athens" not in kept


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    failures_left = 0

    def do_GET(self):  # noqa: N802
        cls = type(self)
        self.path = self.path.split("?")[0]  # query strings (tokens) do not change what is served
        if self.path == "/missing.csv":
            self.send_error(404, "Not Found")
            return
        if self.path == "/flaky.csv" and cls.failures_left > 0:
            cls.failures_left -= 1
            self.send_error(503, "Service Unavailable")
            return
        if self.path == "/broken.csv":
            self.send_error(500, "Internal Server Error")
            return
        if self.path in ("/cut-no-length.csv", "/cut-with-length.csv"):
            # The connection drops mid-row: without a Content-Length only the missing line break tells.
            self.send_response(200)
            if self.path == "/cut-with-length.csv":
                self.send_header("Content-Length", str(len(cls.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(cls.body[: len(cls.body) // 2 + 7])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path == "/whole-no-length.csv":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(cls.body)
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(cls.body)))
        self.end_headers()
        self.wfile.write(cls.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(project):
    _Handler.body = (project / "samples" / "cities.csv").read_bytes()
    _Handler.failures_left = 2
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def set_params(project: Path, text: str) -> None:
    folder = project / "conf" / "local" / "parameters"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ingest.yml").write_text(text)


def test_http_source_with_retries_on_5xx(project_copy, run_invoke, http_server):
    set_params(project_copy, f"source: {http_server}/flaky.csv\nbackoff: 0.01\n")
    result = run_invoke(project_copy, "run")
    assert result.returncode == 0, result.stderr
    assert _Handler.failures_left == 0  # both 503s were retried
    assert len(rows(project_copy / "data" / "ingest.duckdb", "cities")) == 22


@pytest.mark.parametrize(
    "path, message",
    [
        ("/missing.csv", "HTTP 404 Not Found"),
        ("/broken.csv", "HTTP 500 Internal Server Error after 2 retries"),
    ],
)
def test_http_errors_name_the_url(project_copy, run_invoke, http_server, path, message):
    set_params(project_copy, f"source: {http_server}{path}\nretries: 2\nbackoff: 0.01\n")
    result = run_invoke(project_copy, "run")
    assert_one_line_error(result, pipeline_failed(f"cannot download {http_server}{path}: {message}"))
    assert not (project_copy / "data" / "ingest.duckdb").exists()


@pytest.mark.parametrize(
    "path, reason",
    [
        (
            "/cut-no-length.csv",
            "it may be cut short (no Content-Length, and it does not end with a line break); "
            "the table is left as it was",
        ),
        ("/cut-with-length.csv", "the connection closed early (cut short)"),
    ],
)
def test_a_download_cut_short_never_replaces_the_table(project_copy, run_invoke, http_server, path, reason):
    assert run_invoke(project_copy, "run").returncode == 0  # the table from the sample: 22 rows
    database = project_copy / "data" / "ingest.duckdb"
    before = rows(database, "cities")
    set_params(project_copy, f"source: {http_server}{path}\nretries: 0\n")
    result = run_invoke(project_copy, "run")
    assert_one_line_error(result, pipeline_failed(f"cannot download {http_server}{path}: {reason}"))
    assert rows(database, "cities") == before


def test_a_whole_download_without_content_length_is_fine(project_copy, run_invoke, http_server):
    set_params(project_copy, f"source: {http_server}/whole-no-length.csv\n")
    result = run_invoke(project_copy, "run")
    assert result.returncode == 0, result.stderr
    assert len(rows(project_copy / "data" / "ingest.duckdb", "cities")) == 22


def test_unreachable_source_is_one_line(project_copy, run_invoke):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        set_params(project_copy, f"source: http://127.0.0.1:{port}/x.csv\nretries: 1\nbackoff: 0.01\n")
        result = run_invoke(project_copy, "run")
    assert_one_line_error(
        result, pipeline_failed(f"cannot download http://127.0.0.1:{port}/x.csv: connection failed after 1 retries")
    )


def test_unknown_pipeline(project, run_invoke):
    assert_one_line_error(
        run_invoke(project, "run", "--pipeline", "nope"), "error: unknown pipeline 'nope' (available: ingest)"
    )


def test_missing_env_folder(project, run_invoke):
    assert_one_line_error(
        run_invoke(project, "run", "--env", "staging"), "error: conf/staging: no such config environment"
    )


def test_malformed_yaml_names_file_and_line(project_copy, run_invoke):
    (project_copy / "conf/base/parameters/ingest.yml").write_text("source: samples/cities.csv\ntable: [cities\n")
    assert_one_line_error(
        run_invoke(project_copy, "run"),
        "error: conf/base/parameters/ingest.yml: malformed YAML at line 3, column 1: "
        "expected ',' or ']', but got '<stream end>'",
    )


def test_missing_parameter_names_the_key(project_copy, run_invoke):
    (project_copy / "conf/base/parameters/ingest.yml").write_text("source: samples/cities.csv\n")
    assert_one_line_error(
        run_invoke(project_copy, "run"),
        pipeline_failed("missing parameters key 'table' (conf/<env>/parameters/ingest.yml)"),
    )


def test_missing_source_file_names_it(project_copy, run_invoke):
    set_params(project_copy, "source: samples/nope.csv\n")
    assert_one_line_error(
        run_invoke(project_copy, "run"), pipeline_failed("cannot read samples/nope.csv: No such file or directory")
    )


def test_new_pipeline_then_tests_and_run(project_copy, run_invoke):
    created = run_invoke(project_copy, "new-pipeline", "clean_up")
    assert created.returncode == 0, created.stderr
    for rel in (
        "src/demo_project/pipelines/clean_up/pipeline.py",
        "conf/base/parameters/clean_up.yml",
        "src/tests/pipelines/clean_up/test_pipeline.py",
    ):
        assert (project_copy / rel).is_file()
    tests = run_invoke(project_copy, "test")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "passed" in tests.stdout and "failed" not in tests.stdout
    ran = run_invoke(project_copy, "run", "--pipeline", "clean_up", "--pipeline", "ingest")
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.index("pipeline clean_up: starting") < ran.stderr.index("pipeline ingest: starting")
    assert_one_line_error(
        run_invoke(project_copy, "new-pipeline", "clean_up"),
        "error: pipeline 'clean_up' already exists: src/demo_project/pipelines/clean_up, "
        "src/tests/pipelines/clean_up, conf/base/parameters/clean_up.yml, conf/base/catalog/clean_up.yml",
    )
    assert_one_line_error(
        run_invoke(project_copy, "new-pipeline", "class"),
        "error: invalid pipeline name 'class': it is a Python keyword; it must be a Python identifier "
        "such as 'my_pipeline'",
    )


def test_project_installs_as_its_readme_says_with_piperack_from_a_package_folder(project_copy, tmp_path, wheelhouse):
    """The user's path, with real pip: a virtualenv, `pip install -r requirements-dev.txt -e .` (piperack
    found through PIP_FIND_LINKS, as from a package index), then the tasks, the tests and the runner."""
    readme = (project_copy / "README.md").read_text()
    assert "pip install -r requirements-dev.txt -e ." in readme
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = {
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "VIRTUAL_ENV": str(venv),
        "PIP_FIND_LINKS": f"{wheelhouse} {os.environ.get('PIP_FIND_LINKS', '')}".strip(),
    }
    for key in ("PIP_CONFIG_FILE", "XDG_CONFIG_HOME", "PIP_CACHE_DIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    install = subprocess.run(
        [py, "-m", "pip", "install", "--quiet", "-r", "requirements-dev.txt", "-e", "."],
        cwd=project_copy,
        capture_output=True,
        text=True,
        env=env,
    )
    assert install.returncode == 0, install.stderr
    version = subprocess.run([py, "-m", "pip", "show", "piperack"], capture_output=True, text=True, env=env).stdout
    assert f"Version: {kitlib.kit_version()}" in version
    assert (
        str(venv)
        in subprocess.run(
            [py, "-c", "import piperack; print(piperack.__file__)"], capture_output=True, text=True, env=env
        ).stdout
    )  # installed, not the kit's src/
    listed = subprocess.run(
        [str(venv / "bin" / "invoke"), "--list"], cwd=project_copy, capture_output=True, text=True, env=env
    )
    assert listed.returncode == 0, listed.stderr
    for name in ("run", "test", "new-pipeline", "package", "pull", "build-reqs", "docker-build", "docker-run"):
        assert f"  {name}" in listed.stdout
    packaged = subprocess.run(
        [str(venv / "bin" / "invoke"), "package", "pipelines.ingest"],
        cwd=project_copy,
        capture_output=True,
        text=True,
        env=env,
    )
    assert packaged.returncode == 0, packaged.stderr
    assert (project_copy / "dist" / "ingest-0.1.0.tar.gz").is_file()
    tests = subprocess.run([py, "-m", "pytest"], cwd=project_copy, capture_output=True, text=True, env=env)
    assert tests.returncode == 0, tests.stdout
    ran = subprocess.run([py, "-m", "demo_project", "run"], cwd=project_copy, capture_output=True, text=True, env=env)
    assert ran.returncode == 0, ran.stderr
    assert len(rows(project_copy / "data" / "ingest.duckdb", "cities")) == 22


# -- configuration conventions (issue 15): overrides, environment variables, credentials, logging --


def test_params_override_parameters_for_one_run(project_copy, run_invoke):
    result = run_invoke(project_copy, "run", "--pipeline", "ingest", "--params", "ingest.table=towns,ingest.retries=0")
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(project_copy / "data" / "ingest.duckdb"), read_only=True) as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    assert tables == {"towns"}
    assert "table: cities" in (project_copy / "conf/base/parameters/ingest.yml").read_text()  # nothing written


@pytest.mark.parametrize(
    "params, message",
    [
        ("ingest.table", "--params 'ingest.table': expected <pipeline>.<key>=<value>, e.g. ingest.timeout=5"),
        ("table=towns", "--params 'table=towns': expected <pipeline>.<key>=<value>, e.g. ingest.timeout=5"),
        ("nope.table=towns", "--params 'nope.table': no pipeline 'nope' (available: ingest)"),
    ],
)
def test_bad_params_are_one_line(project_copy, run_invoke, params, message):
    assert_one_line_error(run_invoke(project_copy, "run", "--params", params), f"error: {message}")


def test_environment_variables_in_conf(project_copy, run_invoke):
    set_params(project_copy, "source: ${oc.env:CITIES_CSV}\ntable: ${oc.env:CITIES_TABLE,cities_env}\n")
    missing = run_invoke(project_copy, "run")
    assert_one_line_error(
        missing,
        "error: conf/<base|local>/parameters/ingest.yml: source: KeyError raised while resolving interpolation: "
        "\"Environment variable 'CITIES_CSV' not found\"",
    )
    ok = run_invoke(project_copy, "run", env={"CITIES_CSV": "samples/cities.csv"})
    assert ok.returncode == 0, ok.stderr
    assert len(rows(project_copy / "data" / "ingest.duckdb", "cities_env")) == 22


def test_credentials_are_referenced_and_never_printed(project_copy, run_invoke, http_server):
    secret = "tok-9f8e7d6c5b4a"
    (project_copy / "conf/local/credentials.yml").write_text(f"cities_api:\n  token: {secret}\n")
    set_params(project_copy, f"source: {http_server}/missing.csv?token=${{credentials:cities_api.token}}\nretries: 0\n")
    result = run_invoke(project_copy, "run", "--log-level", "DEBUG")
    assert_one_line_error(
        result, pipeline_failed(f"cannot download {http_server}/missing.csv?token=***: HTTP 404 Not Found")
    )
    logged = (project_copy / "logs" / "run.log").read_text()
    assert secret not in result.stdout + result.stderr + logged
    # urllib3 logs the request line at DEBUG: the secret in its URL reaches the file only as ***
    port = http_server.rsplit(":", 1)[1]
    request = f'DEBUG urllib3.connectionpool: http://127.0.0.1:{port} "GET /missing.csv?token=*** HTTP/1.1" 404 '
    assert [line for line in logged.splitlines() if request in line], logged


def _logged(stderr: str) -> list[str]:
    """The log records on the console ("HH:MM:SS LEVEL logger: message"), without their time."""
    return [line.split(" ", 1)[1] for line in stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d ", line)]


def test_logging_goes_to_the_console_and_a_rotating_file(project_copy, run_invoke):
    database = project_copy / "data" / "ingest.duckdb"
    quiet = run_invoke(project_copy, "run", "--log-level", "WARNING")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # the run happened (the table is there) and logged nothing at WARNING
    assert len(rows(database, "cities")) == 22
    database.unlink()
    loud = run_invoke(project_copy, "run")
    assert loud.returncode == 0, loud.stderr
    records = _logged(loud.stderr)
    assert records[0] == "INFO demo_project: pipeline ingest: starting (env local)"
    assert re.fullmatch(r"INFO demo_project: pipeline ingest: done in \d+\.\d\d s", records[-1]), records
    log_file = project_copy / "logs" / "run.log"
    assert re.search(r" INFO demo_project: pipeline ingest: done in \d+\.\d\d s$", log_file.read_text(), re.M)
    assert "/logs/" in (project_copy / ".gitignore").read_text()
    database.unlink()
    (project_copy / "conf/local/logging.yml").write_text("root:\n  level: WARNING\n")
    per_env = run_invoke(project_copy, "run")  # conf/local/logging.yml merged over conf/base's
    assert per_env.returncode == 0, per_env.stderr
    assert per_env.stderr == ""
    assert len(rows(database, "cities")) == 22
    (project_copy / "conf/local/logging.yml").write_text("handlers:\n  console:\n    class: no.such.Handler\n")
    assert_one_line_error(
        run_invoke(project_copy, "run"),
        "error: conf/local/logging.yml: not a valid logging configuration (Unable to configure handler 'console')",
    )
