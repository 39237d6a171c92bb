"""Print a Markdown table of the final metrics of every run below a directory, and list the runs
that have none (diverged, or stopped before their end).

    python experiments/summarize.py multirun/default_5_seeds
"""

import sys
from pathlib import Path

from ganlab.summary import collect, markdown, unfinished

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
        print(f"{chr(10) + 'Not in the table' if rows else 'No run finished'}: {len(missing)} "
              f"run{'s' if len(missing) > 1 else ''} without final metrics")
        for row in missing:
            print(f"- {row['run']}: {row['status']}")
