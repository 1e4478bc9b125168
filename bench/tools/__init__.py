"""One module per tool: write its input files, return the command line to time it.

Every executable is resolved next to the running interpreter (``sys.executable``'s
directory) before ``PATH``: a pyenv shim in front of a tool costs ~100 ms per call
and would be charged to the tool.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_executable(name: str) -> str | None:
    """The tool installed with this interpreter, else the one on PATH, else None."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)
