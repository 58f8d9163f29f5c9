"""Validate the answers before anything is generated (the same check as local_extensions.py).

Cookiecutter renders this file with the answers, runs it, and on a non-zero exit removes whatever
it had started to write. A failure is one line on stderr naming the answer and what is wrong.
"""
import sys

sys.path.insert(0, "{{ cookiecutter._repo_dir }}")

from local_extensions import problem  # noqa: E402

reason = problem("{{ cookiecutter.repo_name }}", "{{ cookiecutter.python_package }}")
if reason:
    print(f"error: {reason}", file=sys.stderr)
    sys.exit(1)
