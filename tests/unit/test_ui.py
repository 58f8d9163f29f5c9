"""piperack.ui: progress only for a person at a terminal, and one safe line per name."""

from __future__ import annotations

import sys

from piperack import ui


def test_run_streaming_shows_lines_as_they_come_only_when_progress_is_on(monkeypatch, capsys):
    code = "import sys, time\nfor i in range(3):\n    print(f'step {i}', flush=True); time.sleep(0.05)\nsys.exit(3)\n"
    monkeypatch.setattr(ui, "progress_enabled", lambda: True)
    proc = ui.run_streaming([sys.executable, "-c", code], "pip download")
    assert proc.returncode == 3 and proc.stdout == "step 0\nstep 1\nstep 2\n"
    assert capsys.readouterr().err == "  pip download | step 0\n  pip download | step 1\n  pip download | step 2\n"
    proc = ui.run_streaming([sys.executable, "-c", code], "resolve", show=lambda line: "x" if "1" in line else None)
    assert capsys.readouterr().err == "  resolve | x\n"
    monkeypatch.setattr(ui, "progress_enabled", lambda: False)
    assert ui.run_streaming([sys.executable, "-c", code], "quiet").stdout.count("step") == 3
    assert capsys.readouterr().err == ""


def test_progress_is_off_with_quiet_and_off_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(ui, "QUIET", False)
    assert ui.progress_enabled()
    monkeypatch.setattr(ui, "QUIET", True)
    assert not ui.progress_enabled()
    monkeypatch.setattr(ui, "QUIET", False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not ui.progress_enabled()


def test_names_with_control_characters_cannot_forge_lines(capsys):
    assert ui.shown("a/b.py") == "a/b.py"
    assert ui.shown("evil\n  write   x") == "'evil\\n  write   x'"
    ui.warn("bad\rname\x1b[2J")
    assert capsys.readouterr().err == "warning: bad\\rname\\x1b[2J\n"


def test_first_few_names_five_and_says_there_are_more():
    assert ui.first_few([]) == ""
    assert ui.first_few(["a", "b", "c", "d", "e"]) == "a, b, c, d, e"
    assert ui.first_few(["a", "b", "c", "d", "e", "f"]) == "a, b, c, d, e …"
    assert ui.first_few(["a", "b", "c"], most=2) == "a, b …"
