"""``python -m jwst_optextract``: the batch runner (see `jwst_optextract.tools.batch`)."""

import sys

from .tools.batch import main

sys.exit(main())
