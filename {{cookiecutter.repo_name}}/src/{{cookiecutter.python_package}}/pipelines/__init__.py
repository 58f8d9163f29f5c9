"""The project's modular pipelines: one package each, found by the runner."""
