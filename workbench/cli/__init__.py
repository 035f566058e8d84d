"""The ``workbench`` command: parse (``parser``), call one library function, print, exit code (``commands``).

Exit codes: 0 success; 1 the data has problems (rejected records, error findings); 2 usage
or fatal error (message on stderr).
"""

from workbench.cli.commands import EXIT_DATA, EXIT_OK, EXIT_USAGE, UsageError, overrides_from
from workbench.cli.parser import build_parser, main

__all__ = ["EXIT_DATA", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main", "overrides_from"]
