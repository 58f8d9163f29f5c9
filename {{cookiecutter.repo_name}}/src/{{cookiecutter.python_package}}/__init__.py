{{ (cookiecutter.project_name ~ ": " ~ cookiecutter.description) | py_docstring }}

__version__ = "0.1.0"
