"""Sample from a finished run: `python generate.py run=RUN_DIR num_samples=N seed=S out=PATH`."""

import sys

from ganlab.errors import report_ctrl_c, run_reporting_user_errors

if __name__ == "__main__":  # before torch's import, most of a start-up
    report_ctrl_c("generate.py stopped; each file it writes appears whole or not at all")

from ganlab.generate import main

if __name__ == "__main__":
    run_reporting_user_errors(lambda: main(sys.argv[1:]))
