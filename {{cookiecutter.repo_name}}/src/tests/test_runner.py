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


def ref(key: str) -> str:
    return "${" + key + "}"


@pytest.mark.parametrize(
    "data",
    [
        dict(a=1, nested=dict(x=[1, dict(y=2.5)], y="s", z=None, t=True)),
        dict(a="${oc.env:HOME}", b=dict(c="${a}")),  # something to resolve: OmegaConf reads it
        dict(a="???"),  # OmegaConf's missing marker
        dict(a=[1, 2], b="${a[1]}-${.c}-${a.0}", c="\\${a}", d=dict(e="${..a}", f="${oc.select:a,x}")),
        dict(k="a", a="v", b=ref(ref("k")), c=ref("oc.select:${k}"), e="\\${a}", d=ref("oc.decode:${e}")),
    ],
)
def test_configuration_resolves_as_omegaconf_does(data):
    from omegaconf import OmegaConf

    from {{ cookiecutter.python_package }}.runner import _resolved

    expected = OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    resolved = _resolved([("f.yml", data)], "f.yml")
    assert resolved == expected
    assert resolved is not data


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


# -- hostile configuration and output (issue 20): bombs, shapes, secrets in every form, log files --


def billion_laughs() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text, reason",
    [
        (billion_laughs(), "its aliases expand to more than 100000 values"),
        ("x: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested more than 100 levels deep"),
        ("x:\n" + "".join(f"{'  ' * i}k{i}:\n" for i in range(1, 300)), "nested more than 100 levels deep"),
    ],
    ids=["billion-laughs", "50000-deep-flow", "deep-block"],
)
def test_yaml_bombs_are_one_line_naming_the_file(tmp_path, text, reason):
    bomb = tmp_path / "ingest.yml"
    bomb.write_text(text)
    with pytest.raises(RunError) as caught:
        read_yaml(bomb)
    assert str(caught.value) == f"{bomb}: refused: {reason}"


def interpolation_bomb(levels: int = 20) -> str:
    """Each level four times the one before: 8 characters become 8 TiB after 20 levels."""
    lines = ['l0: "xxxxxxxx"'] + [f'l{i}: "{ref(f"l{i - 1}") * 4}"' for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def decode_bomb() -> str:
    """The same, through oc.decode, which resolves the escaped interpolation it is given."""
    lines = ['l0: "xxxxxxxx"']
    for i in range(1, 21):
        lines.append(f"e{i}: '\\" + ref(f"l{i - 1}") + "'")
        lines.append(f'l{i}: "' + ref("oc.decode:" + ref(f"e{i}")) * 4 + '"')
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text, reason",
    [
        (interpolation_bomb(), "l11: its interpolations expand to more than 16 MiB"),
        (
            "l0: [a, b, c, d, e, f, g, h, i, j]\n"
            + "".join(f"l{i}: [{', '.join([chr(34) + ref(f'l{i - 1}') + chr(34)] * 10)}]\n" for i in range(1, 9)),
            "l4.7: its interpolations expand to more than 100000 values",
        ),
        (  # ${ ${k1} } names l0: the key is spelled out first
            'l0: "xxxxxxxx"\n' + "".join(f'k{i}: l{i - 1}\nl{i}: "{ref(ref(f"k{i}")) * 4}"\n' for i in range(1, 21)),
            "l11: its interpolations expand to more than 16 MiB",
        ),
        (decode_bomb(), "l10: its interpolations expand to more than 16 MiB"),
        (
            'x: y\na: "' + ref(ref("oc.select:x")) + '"\n',
            "a: it names a key built by an interpolation that cannot be worked out in advance",
        ),
    ],
    ids=["strings", "lists", "built-keys", "decoded", "unknown-key"],
)
def test_interpolation_bombs_are_refused_before_omegaconf_builds_them(tmp_path, text, reason):
    (tmp_path / "base/parameters").mkdir(parents=True)
    (tmp_path / "base/parameters/p.yml").write_text("l0: overridden\n")
    (tmp_path / "local/parameters").mkdir(parents=True)
    bomb = tmp_path / "local/parameters/p.yml"
    bomb.write_text(text)
    with pytest.raises(RunError) as caught:
        load_config(tmp_path, "local", "parameters", "p")
    assert str(caught.value) == f"{bomb}: refused: {reason}"


def test_environment_variables_count_towards_the_interpolation_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("P_BIG", "x" * 2**20)
    (tmp_path / "base/parameters").mkdir(parents=True)
    path = tmp_path / "base/parameters/p.yml"
    path.write_text("".join(f"k{i}: " + ref("oc.env:P_BIG") + "\n" for i in range(15)))
    assert len(load_config(tmp_path, "base", "parameters", "p")["k14"]) == 2**20  # 15 MiB in all: allowed
    path.write_text(path.read_text() + "k15: ${oc.env:P_BIG}\n")
    with pytest.raises(RunError, match=f"^{path}: refused: k15: its interpolations expand to more than 16 MiB$"):
        load_config(tmp_path, "base", "parameters", "p")


def test_anchors_within_limits_still_work(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("defaults: &d {retries: 3, timeout: 5}\nfast: {<<: *d, timeout: 1}\nsame: *d\n")
    assert read_yaml(path) == {
        "defaults": {"retries": 3, "timeout": 5},
        "fast": {"retries": 3, "timeout": 1},
        "same": {"retries": 3, "timeout": 5},
    }


def test_params_bombs_and_depth_are_one_line():
    with pytest.raises(RunError, match=r"^--params 'p.x': refused: nested more than 100 levels deep$"):
        parse_params("p.x=" + "[" * 50_000 + "]" * 50_000, ["p"])
    with pytest.raises(RunError, match="refused: nested more than 100 levels deep$"):
        parse_params("p." + "a." * 5_000 + "b=1", ["p"])


def test_a_list_where_a_mapping_was_is_one_line_naming_key_and_file(tmp_path):
    (tmp_path / "base/parameters").mkdir(parents=True)
    (tmp_path / "local/parameters").mkdir(parents=True)
    (tmp_path / "base/parameters/p.yml").write_text("columns: {a: string}\nrequired: [a]\n")
    (tmp_path / "local/parameters/p.yml").write_text("columns: [a]\n")
    with pytest.raises(RunError) as caught:
        load_config(tmp_path, "local", "parameters", "p")
    assert str(caught.value) == (
        f"{tmp_path}/local/parameters/p.yml: columns: expected a mapping (as in the files before), got a list"
    )
    overrides = parse_params("p.required={x: 1}", ["p"])["p"]
    with pytest.raises(RunError, match=r"^--params: required: expected a list \(as in the files before\), got a map"):
        load_config(tmp_path, "base", "parameters", "p", overrides)


def test_a_short_credential_is_refused_naming_its_key_not_its_value(tmp_path):
    (tmp_path / "local").mkdir()
    (tmp_path / "local/credentials.yml").write_text("db:\n  user: analyst\n  password: pw1\n")
    with pytest.raises(RunError) as caught:
        load_credentials(tmp_path, "local")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}/local/credentials.yml: credentials key 'db.password' is shorter than 6 ")
    assert "pw1" not in message and "\n" not in message


SECRET = "p@ss w/rd+é'\"%&=x"


def test_a_credential_is_masked_in_every_form():
    from urllib.parse import quote, quote_plus

    from {{ cookiecutter.python_package }}.safety import add_secret

    add_secret(SECRET)
    shown = [
        SECRET,
        quote(SECRET),
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        quote(SECRET, safe="!#$%&'()*+,/:;=?@[]~"),  # requests' requote_uri
        quote(SECRET).lower(),
        quote(quote(SECRET, safe=""), safe=""),  # a URL inside a URL
        repr(SECRET),
        repr({"password": SECRET}),
        repr(repr(SECRET)),
        repr(SECRET.encode()),
        json.dumps(SECRET),
        json.dumps({"password": SECRET}, ensure_ascii=False),
    ]
    for form in shown:
        text = redact(f"connecting with {form} now")
        assert text.startswith("connecting with ") and "w/rd" not in text and "ss w" not in text, (form, text)


def test_a_multi_line_credential_is_masked_line_by_line():
    from {{ cookiecutter.python_package }}.safety import add_secret

    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END KEY-----\n"
    add_secret(key)
    for line in key.splitlines():
        assert redact(f"line: {line}") == "line: ***"
    assert "MIIE" not in redact(repr(key)) and "MIIE" not in redact(key.replace("\n", "\\n"))


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://bob:hunter22@db.example.org/x", "https://bob:***@db.example.org/x"),
        ("s3://ghp_abcdef123456@bucket/key.csv", "s3://***@bucket/key.csv"),
        (
            "https://h.org/a.csv?token=t1&page=2&api_key=k1&X-Amz-Signature=s1&sig=s2#access_token=t2",
            "https://h.org/a.csv?token=***&page=2&api_key=***&X-Amz-Signature=***&sig=***#access_token=***",
        ),
        ('"GET /a.csv?password=pw9&Secret=s9 HTTP/1.1" 503', '"GET /a.csv?password=***&Secret=*** HTTP/1.1" 503'),
        ("plain text with key=value and a@b.org", "plain text with key=value and a@b.org"),
    ],
)
def test_undeclared_url_credentials_are_masked(url, shown):
    assert redact(url) == shown


def test_log_records_are_redacted_with_their_traceback(tmp_path):
    import io
    import logging

    from {{ cookiecutter.python_package }}.safety import RedactSecrets, add_secret

    add_secret("tr4ceback-secret")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("third.party.lib")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("bad value 'tr4ceback-secret'\nsecond line tr4ceback%2Dsecret")
        except ValueError:
            logger.error("failed for %r", {"token": "tr4ceback-secret"}, exc_info=True)
        logger.error("unformattable %s %s", "tr4ceback-secret")  # wrong number of arguments
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "tr4ceback" not in output and "Traceback" in output and "failed for {'token': '***'}" in output


def test_log_files_are_never_written_through_links_or_outside_the_project(tmp_path, monkeypatch):
    import os

    from {{ cookiecutter.python_package }}.safety import writable_log_file

    monkeypatch.chdir(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "victim").write_text("keep me\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/run.log").symlink_to(outside / "victim")
    (tmp_path / "linked").symlink_to(outside, target_is_directory=True)
    os.mkfifo(tmp_path / "logs/fifo.log")
    refused = {
        "logs/run.log": "logs/run.log is a symbolic link",
        "linked/run.log": "linked is a symbolic link",
        "logs/fifo.log": "logs/fifo.log is not a regular file",
        "../x.log": "a relative path leaving the project: give an absolute path to log outside it",
        "logs/../../x.log": "a relative path leaving the project: give an absolute path to log outside it",
    }
    for name, reason in refused.items():
        with pytest.raises(OSError) as caught:
            writable_log_file(name)
        assert caught.value.strerror == reason, name
    assert (outside / "victim").read_text() == "keep me\n" and sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert writable_log_file("logs/new/run.log") == tmp_path / "logs/new/run.log"
    assert writable_log_file(str(outside / "abs.log")) == outside / "abs.log"  # absolute: meant
