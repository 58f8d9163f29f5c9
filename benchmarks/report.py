"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections as they are.

Each section sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; a new one is appended.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Measured on the kit's reference machine (2 cores, 24 GiB). Each section is rewritten by its
script in benchmarks/ (`bash scripts/kit.sh bench --name NAME`); the command and the date are
given with each table. Speed goals are checked here, never in timed tests.
"""


def machine() -> str:
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"
    )


def write_section(name: str, body: str) -> None:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{start}\n{body.strip()}\n\n_Measured {stamp} on {machine()}._\n{end}"
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"updated {DOC.relative_to(DOC.parents[1])} section {name!r}")
