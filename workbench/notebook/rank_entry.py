"""Entry point every rank of a launch runs: ``python -m workbench.notebook.rank_entry --rank-run JOB_JSON``."""

import sys

from workbench.notebook.ranks import rank_run

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--rank-run":
        print(
            "usage: python -m workbench.notebook.rank_entry --rank-run JOB_JSON "
            "(started by `workbench train` or `workbench evaluate`)",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.exit(rank_run(sys.argv[2]))
