"""``python -m papernotes_core.elu``: run the ELU study at ``PAPERNOTES_SCALE`` (see ``main``)."""

import sys

from . import main

sys.exit(main())
