"""Engine unit tests import the engine straight from the template folder (it is not rendered)."""
import sys
from pathlib import Path

ENGINE_PARENT = Path(__file__).resolve().parents[2] / "{{cookiecutter.repo_name}}" / "scripts"
if str(ENGINE_PARENT) not in sys.path:
    sys.path.insert(0, str(ENGINE_PARENT))
