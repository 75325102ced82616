"""Ratio benchmarks: ours against a real peer, timed side by side in one run (`make bench`).

Each benchmark module defines ``NAME`` and ``run() -> dict`` returning the results mapping (see
``harness.ratio_benchmark``); ``python -m benchmarks [name ...]`` runs them and writes
``results/bench/<name>.json``. Not part of ``make test``: timings need a quiet machine.
"""
