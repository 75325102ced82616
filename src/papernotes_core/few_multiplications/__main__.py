"""``python -m papernotes_core.few_multiplications``: the chapter's experiments at ``PAPERNOTES_SCALE``."""

import sys

from . import main

sys.exit(main())
