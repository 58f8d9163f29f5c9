import json

import pytest

from {{ cookiecutter.python_package }}.runner import (
    RunError,
    deep_merge,
    load_config,
    load_credentials,
    parse_params,
    read_yaml,
    redact,
    register_credentials,
)


def test_deep_merge_overrides_nested_keys_only():
    base = dict(a=1, nested=dict(x=1, y=2))
    assert deep_merge(base, dict(nested=dict(y=3))) == dict(a=1, nested=dict(x=1, y=3))
    assert base == dict(a=1, nested=dict(x=1, y=2))


@pytest.mark.parametrize(
    "base, override",
    [
        (dict(a=1, nested=dict(x=[1, 2], y="s")), dict(nested=dict(x=[3], z=None), b=0.5)),
        (dict(a=dict(x=1)), dict(a=2)),  # a mapping meets a value: OmegaConf decides
        (dict(a="${oc.env:HOME}"), dict(b=1)),  # something to resolve: OmegaConf reads it
        (dict(a="value"), dict(a="???")),  # OmegaConf's missing marker never replaces a value
    ],
)
def test_plain_configuration_merges_as_omegaconf_does(base, override):
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        expected = OmegaConf.to_container(OmegaConf.merge(base, override))
    except OmegaConfBaseException as exc:
        expected = type(exc)
    try:
        merged = deep_merge(base, override)
    except OmegaConfBaseException as exc:
        merged = type(exc)
    assert merged == expected


def test_env_is_merged_over_base(tmp_path):
    (tmp_path / "base/parameters").mkdir(parents=True)
    (tmp_path / "prod/parameters").mkdir(parents=True)
    (tmp_path / "base/parameters/p.yml").write_text("a: 1\nb: {c: 2, d: 3}\n")
    (tmp_path / "prod/parameters/p.yml").write_text("b: {d: 4}\n")
    assert load_config(tmp_path, "prod", "parameters", "p") == dict(a=1, b=dict(c=2, d=4))


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("a: 1\nb: [unclosed\n")
    with pytest.raises(RunError, match=r"bad.yml: malformed YAML at line \d+"):
        read_yaml(bad)


def test_environment_variables_and_overrides(tmp_path, monkeypatch):
    (tmp_path / "base/parameters").mkdir(parents=True)
    (tmp_path / "base/parameters/p.yml").write_text("url: ${oc.env:P_URL}\nn: ${oc.env:P_N,7}\nkeep: 1\n")
    monkeypatch.setenv("P_URL", "https://example.org/x.csv")
    overrides = parse_params("p.keep=2,p.new.deep=true", ["p"])["p"]
    loaded = load_config(tmp_path, "base", "parameters", "p", overrides)
    assert loaded["new"] == dict(deep=True)
    assert loaded == dict(url="https://example.org/x.csv", n="7", keep=2, new=loaded["new"])
    monkeypatch.delenv("P_URL")
    with pytest.raises(RunError, match="P_URL"):
        load_config(tmp_path, "base", "parameters", "p")


@pytest.mark.parametrize(
    "text, message",
    [
        ("timeout=5", "expected <pipeline>.<key>=<value>"),
        ("p.timeout", "expected <pipeline>.<key>=<value>"),
        ("=5", "expected <pipeline>.<key>=<value>"),
        ("p..x=1", "expected <pipeline>.<key>=<value>"),
        ("nope.timeout=5", "no pipeline 'nope'"),
    ],
)
def test_bad_overrides_are_one_line(text, message):
    with pytest.raises(RunError, match=message):
        parse_params(text, ["p"])


def test_override_values_keep_their_commas_and_types():
    parsed = parse_params("p.url=https://x.org/a?b=1,2,p.rate=0.5,p.name='007'", ["p"])["p"]
    assert parsed == dict(url="https://x.org/a?b=1,2", rate=0.5, name="007")


def test_credentials_are_read_by_reference_and_never_shown(tmp_path):
    (tmp_path / "base/catalog").mkdir(parents=True)
    (tmp_path / "local").mkdir()
    (tmp_path / "local/credentials.yml").write_text("warehouse:\n  token: t0p-s3cret-value\n")
    (tmp_path / "base/catalog/p.yml").write_text("url: https://db.example.org/?token=${credentials:warehouse.token}\n")
    register_credentials(load_credentials(tmp_path, "local"))
    catalog = load_config(tmp_path, "local", "catalog", "p")
    assert catalog["url"].endswith("t0p-s3cret-value")
    assert redact(f"failed to open {catalog['url']}") == "failed to open https://db.example.org/?token=***"


def test_pipelines_run_in_the_declared_order_ties_by_name(tmp_path):
    from {{ cookiecutter.python_package }}.runner import choose, read_order

    (tmp_path / "base").mkdir()
    declared = "report: {depends_on: [aggregate]}\naggregate: {depends_on: [ingest]}\n"
    (tmp_path / "base/pipelines.yml").write_text(declared)
    order = read_order(tmp_path, "local", ["aggregate", "zeta", "ingest", "report"])
    assert choose(None, False, order) == ["ingest", "aggregate", "report", "zeta"]
    assert choose(["report"], False, order) == ["report"]
    assert choose(["report"], True, order) == ["ingest", "aggregate", "report"]
    with pytest.raises(RunError, match=r"unknown pipeline 'reprt' .*; did you mean 'report'\?$"):
        choose(["reprt"], False, order)


def test_a_cycle_is_one_line(tmp_path):
    from {{ cookiecutter.python_package }}.runner import read_order

    (tmp_path / "base").mkdir()
    (tmp_path / "base/pipelines.yml").write_text("a: {depends_on: [b]}\nb: {depends_on: [a]}\n")
    with pytest.raises(RunError, match=r"pipelines.yml: cycle: a -> b -> a$"):
        read_order(tmp_path, "base", ["a", "b"])


def test_an_unknown_parameter_is_refused_unless_added_with_plus(tmp_path):
    from {{ cookiecutter.python_package }}.runner import check_overrides

    (tmp_path / "base/parameters").mkdir(parents=True)
    (tmp_path / "base/parameters/p.yml").write_text("table: cities\ncolumns: {a: int}\n")
    added: set = set()
    check_overrides(tmp_path, "base", parse_params("p.table=x,p.columns.a=str", ["p"], added), added)
    refused = r"no key 'tabel'; did you mean 'table'\? \(to add it on purpose: \+p.tabel=...\)$"
    with pytest.raises(RunError, match=refused):
        check_overrides(tmp_path, "base", parse_params("p.tabel=x", ["p"], added), added)
    overrides = parse_params("+p.note=x,+p.deep.er=1", ["p"], added)
    check_overrides(tmp_path, "base", overrides, added)
    assert overrides == dict(p=dict(note="x", deep=dict(er=1)))


def test_airflow_conf_params_arrive_as_json_data(tmp_path, monkeypatch):
    from {{ cookiecutter.python_package }}.runner import check_overrides, params_from_env

    monkeypatch.setenv("PIPERACK_PARAMS", '{"p.table": "${oc.env:HOME}", "+p.n": 5}')
    added: set = set()
    overrides, flat = params_from_env(["p"], added)
    assert overrides == dict(p={"table": "\\${oc.env:HOME}", "n": 5}) and added == {"p.n"}
    assert flat == {"p.table": "${oc.env:HOME}", "+p.n": 5}
    (tmp_path / "base/parameters").mkdir(parents=True)
    (tmp_path / "base/parameters/p.yml").write_text("table: x\n")
    assert load_config(tmp_path, "base", "parameters", "p", overrides["p"]) == {"table": "${oc.env:HOME}", "n": 5}
    with pytest.raises(RunError, match=r"^\$PIPERACK_PARAMS 'p.x': the parameters of 'p' have no key 'x'"):
        check_overrides(tmp_path, "base", dict(p=dict(x=1)), set(), {"p.x"})
    monkeypatch.setenv("PIPERACK_PARAMS", "[1]")
    with pytest.raises(RunError, match=r"^\$PIPERACK_PARAMS: expected a JSON object"):
        params_from_env(["p"], set())


def test_the_run_record_is_one_line_appended_and_rotated(tmp_path, monkeypatch):
    from {{ cookiecutter.python_package }} import runner

    monkeypatch.setattr(runner, "RUNS_KEEP_LINES", 3)
    log = tmp_path / "logs" / "runs.jsonl"
    for n in range(4):
        runner.write_run_record({"n": n, "params": runner.params_given({"p.password": "x", "p.t": 1})}, log)
    assert json.loads(log.read_text()) == dict(n=3, params={"p.password": "***", "p.t": 1})
    assert log.read_text().count("\n") == 1
    assert len((tmp_path / "logs" / "runs.jsonl.1").read_text().splitlines()) == 3


def test_an_unexpected_error_shows_its_type():
    from {{ cookiecutter.python_package }}.runner import _failure

    assert _failure("p", KeyError("database")) == (
        "pipeline 'p' failed: KeyError: 'database' (set PIPERACK_DEBUG=1 for the traceback)"
    )
