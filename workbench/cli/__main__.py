"""``python -m workbench.cli``: the ``workbench`` command."""

import sys

from workbench.cli.parser import main

sys.exit(main())
