"""`python -m {{ cookiecutter.python_package }} run [--pipeline NAME …] [--env ENV]`"""

import sys

from .runner import main

sys.exit(main())
