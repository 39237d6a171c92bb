"""Sample from a finished run: `python generate.py run=RUN_DIR num_samples=N seed=S out=PATH`."""

import sys

from ganlab.errors import run_reporting_user_errors
from ganlab.generate import main

if __name__ == "__main__":
    run_reporting_user_errors(lambda: main(sys.argv[1:]))
