import pytest

from {{ cookiecutter.python_package }}.runner import RunError, deep_merge, load_config, read_yaml


def test_deep_merge_overrides_nested_keys_only():
    base = dict(a=1, nested=dict(x=1, y=2))
    assert deep_merge(base, dict(nested=dict(y=3))) == dict(a=1, nested=dict(x=1, y=3))
    assert base == dict(a=1, nested=dict(x=1, y=2))


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
