"""docs/sharing.md is true: its walk-through runs as written, block by block, in two baked projects
next to each other (team-a publishes, team-b pulls), against the authenticated pypiserver standing
in for https://packages.example.com/, and the outdated table it shows is the one the command prints."""

from __future__ import annotations

import subprocess
import uuid

from scripts import kitlib

DOC = kitlib.KIT / "docs" / "sharing.md"
DOC_URL = "https://packages.example.com/"
DOC_NAME = "acme_ingest"


def _blocks(text: str, kind: str) -> list[str]:
    """The bodies of the fenced blocks whose info string is ``kind`` ("" for a plain fence), in order."""
    found, current, lang = [], None, ""
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current, lang = [], line[3:].strip()
            else:
                if lang == kind:
                    found.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return found


def _cells(text: str) -> list[list[str]]:
    return [line.split(None, 5) for line in text.strip().splitlines()]


def test_the_sharing_walkthrough_runs_as_written(tmp_path, user_env, upload_index):
    name = f"acme_{uuid.uuid4().hex[:10]}"  # the index outlives a test run: a name of this run's own
    text = DOC.read_text(encoding="utf-8").replace(DOC_URL, upload_index.url).replace(DOC_NAME, name)
    work = tmp_path / "work"
    team_a = kitlib.bake(work, project_name="Team A")
    team_b = kitlib.bake(work, project_name="Team B", include_example="no")
    assert (team_a.name, team_b.name) == ("team-a", "team-b")
    settings = _blocks(text, "toml")[0]
    assert settings.startswith("[tool.piperack.publish]\n")
    with open(team_a / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write("\n" + settings)

    env = user_env(TWINE_USERNAME=upload_index.user, TWINE_PASSWORD=upload_index.password)
    blocks = _blocks(text, "bash")
    assert len(blocks) == 5, "publish, pull, publish again, outdated, upgrade"
    cwd, printed = work, {}
    for number, block in enumerate(blocks):
        if number == 2:  # the prose between: team A raises __version__
            init = team_a / "src" / "team_a" / "pipelines" / "ingest" / "__init__.py"
            init.write_text(init.read_text(encoding="utf-8").replace('"0.1.0"', '"0.2.0"'), encoding="utf-8")
        for line in block.strip().splitlines():
            command, _, comment = line.partition("  #")
            command = command.strip()
            if command.startswith("cd "):
                cwd = (cwd / command[3:]).resolve()
                continue
            result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True)
            expected = 1 if "exits 1" in comment else 0
            assert result.returncode == expected, f"{command}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stderr, command
            assert upload_index.password not in result.stdout + result.stderr
            printed[command] = result.stdout
    shown = next(b for b in _blocks(text, "") if b.startswith("module "))
    assert _cells(printed["invoke outdated"]) == _cells(shown)
    assert printed["invoke publish --dry-run"] == (
        f"would publish dist/{name}-0.1.0.tar.gz ({name} 0.1.0) to {upload_index.url}\n"
    )
    pulled = (team_b / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"pipelines.ingest" = {{source = "{name}~=0.1", version = "0.2.0", ' in pulled  # upgraded
