"""The generated README is true: every command it shows runs as shown on a fresh bake, with and
without the example; no placeholder links, no repeated description, no unrunnable placeholders."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

# Commands a README shows that this test does not run, and why.
NOT_RUN = (
    ("python", "making the virtualenv: the test runs in one already"),
    ("pip ", "installing: the session's virtualenv is installed as the README says (tests/test_run.py)"),
    (". ", "activating the virtualenv"),
    ("invoke docker-", "needs a Docker engine: tests/test_docker.py runs them"),
)


def readme_commands(readme: str) -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


@pytest.mark.parametrize(
    "answers, first_step",
    [({}, "invoke run"), ({"include_example": "no"}, "invoke new-pipeline ")],
    ids=["example", "no-example"],
)
def test_every_command_in_the_readme_runs_as_shown(bake, answers, first_step, user_env):
    """``first_step``: what the README has a user do first (run the example, or scaffold a pipeline)."""
    root = bake(**answers)
    readme = (root / "README.md").read_text()
    commands = readme_commands(readme)
    assert commands, "the README shows no command"
    ran = []
    for command in commands:
        if any(command.startswith(prefix) for prefix, _ in NOT_RUN):
            continue
        assert not re.search(r"<[^>]+>", command), f"a placeholder in a command block: {command}"
        result = subprocess.run(
            ["bash", "-c", command], cwd=root, env=user_env(), capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, command
        ran.append(command)
    assert any(c.startswith(first_step) for c in ran), ran
    assert any(c.startswith("invoke package") for c in ran) and any(c.startswith("invoke pull") for c in ran)
    if not answers:  # the share example ends with the pulled pipeline running on its own data
        assert "invoke run --pipeline ingest_eu" in ran
        assert (root / "data" / "ingest_eu.duckdb").is_file()


def test_readme_has_no_placeholder_links_and_no_repeated_text(project):
    readme = (project / "README.md").read_text()
    links = re.findall(r"\]\((https?://[^)]+)\)", readme)
    assert not [link for link in links if re.search(r"example\.(com|org)|github\.com/org/|my\.index", link)]
    paragraphs = [p.strip() for p in readme.split("\n\n") if p.strip() and not p.strip().startswith(("|", "```"))]
    assert len(paragraphs) == len(set(paragraphs)), "a paragraph is repeated"
    description = readme.splitlines()[2]
    assert readme.count(description) == 1
    env_flags = set(re.findall(r"--env ([a-z][a-z0-9_-]*)", readme))  # ENV is the placeholder
    for env in env_flags:
        assert (project / "conf" / env).is_dir(), f"the README shows --env {env}, but conf/{env}/ is not shipped"


def test_generated_requirements_need_nothing_unused(project):
    dev = (project / "requirements-dev.txt").read_text()
    assert "twine" not in dev
    assert {
        line.split("==")[0].split(">=")[0] for line in dev.splitlines() if line and not line.startswith(("#", "-r"))
    } <= {"piperack", "pytest", "ruff"}
    assert not Path(project / "scripts").exists()
