"""piperack's engine: the code behind the project's invoke tasks.

One module per verb (package, pull, reqs, docker, scaffold) over a few shared core modules
(project, manifest, requirements, sdist, archive, rewrite, ui). Only the standard library is
imported at module top, so `invoke --list` stays fast; third-party imports live in functions.
"""
