"""Validate the answers before anything is generated (the same check as local_extensions.py).

Cookiecutter renders this file with the answers, runs it, and on a non-zero exit removes whatever
it had started to write. The check itself ran while this file was rendered (the piperack_problem
filter of local_extensions.py); a failure is one line on stderr naming the answer and what is wrong.
"""
import sys

REASON = {{ cookiecutter | piperack_problem | tojson }}

if REASON:
    print(f"error: {REASON}", file=sys.stderr)
    sys.exit(1)
