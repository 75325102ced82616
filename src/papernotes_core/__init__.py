"""papernotes_core: the tested implementations that the Papernotes notebooks call.

One module per paper, named by the paper's slug (``elu``, ``vae``, ...), and a few shared
modules named for what they do: ``runtime`` (scale, device, seeding, paths), ``data`` (data sets
and the fetch-verify-cache machinery), ``training`` (progress bars, checkpoints, the loop),
``evaluation`` (estimators used by more than one chapter, e.g. log-mean-exp in chunks),
``results`` (write a run's numbers, read them for pages), ``plotting`` (figure helpers).
"""

__version__ = "0.1.0"
