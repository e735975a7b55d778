"""The batch runner's documented path: ``jwst_optextract.batch`` is `jwst_optextract.tools.batch`.

The module lives in ``tools/`` with the other tools that are not steps; this name stays for
code written against the released documentation (``jwst_optextract.batch.run_batch``). It is
the same module object, so attributes, patches and pickled references agree.
"""

import sys

from .tools import batch as _batch

if __name__ == "__main__":  # python -m jwst_optextract.batch, as before the move
    sys.exit(_batch.main())
sys.modules[__name__] = _batch
