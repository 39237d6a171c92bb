"""Print a Markdown table of the final metrics of every run below a directory.

    python experiments/summarize.py multirun/default_5_seeds

Under it, the runs that have none (diverged, or stopped before their end), which its means leave out.
"""

import sys
from pathlib import Path

from ganlab.summary import collect, markdown, not_in_the_table, unfinished

if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__.strip())
        sys.exit()
    if len(sys.argv) != 2:
        sys.exit("usage: python experiments/summarize.py RUNS_DIR")
    if not Path(sys.argv[1]).is_dir():
        sys.exit(f"{sys.argv[1]} is not a directory; give the directory of a sweep or of several runs")
    rows, missing = collect(Path(sys.argv[1])), unfinished(Path(sys.argv[1]))
    if rows:
        print(markdown(rows))
    elif not missing:
        sys.exit(f"no metrics.json below {sys.argv[1]}: did the runs finish?")
    if missing:  # (a mean over the runs that finished says nothing of those that did not)
        print(not_in_the_table(missing, table_shown=bool(rows)))
