"""``python -m papernotes_core.translation_matrix``: the chapter's study at ``PAPERNOTES_SCALE``."""

import sys

from . import main

sys.exit(main())
