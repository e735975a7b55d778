"""``python -m jwst_optextract``: the batch runner (see `jwst_optextract.batch`)."""

import sys

from .batch import main

sys.exit(main())
