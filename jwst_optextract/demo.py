"""``python -m jwst_optextract.demo [directory]``: the README's first command, kept at its path.

The demo lives in `jwst_optextract.tools.demo` with the other tools that are not steps.
"""

import sys

from .tools.demo import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
