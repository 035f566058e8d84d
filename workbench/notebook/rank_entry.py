"""Entry point ``accelerate launch`` runs on every rank (a plain script, so absolute imports)."""

import sys

from workbench.notebook.launch import rank_run

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--rank-run":
        print(
            "usage: rank_entry.py --rank-run JOB_JSON (started by `workbench train` or `workbench evaluate`)",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.exit(rank_run(sys.argv[2]))
