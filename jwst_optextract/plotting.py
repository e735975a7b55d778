"""The plots' documented path: ``jwst_optextract.plotting`` is `jwst_optextract.tools.plotting`.

The module lives in ``tools/`` with the other tools that are not steps; this name stays for
code written against the released documentation (``jwst_optextract.plotting.plot_slit``). It is
the same module object, so attributes and patches agree.
"""

import sys

from .tools import plotting as _plotting

sys.modules[__name__] = _plotting
