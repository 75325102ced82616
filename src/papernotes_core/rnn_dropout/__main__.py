"""``python -m papernotes_core.rnn_dropout``: the chapter's experiments at ``PAPERNOTES_SCALE``."""

import sys

from . import main

sys.exit(main())
