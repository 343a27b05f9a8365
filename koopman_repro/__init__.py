"""koopman_repro: the reproduction of Dogra & Redman (NeurIPS 2020) built on :mod:`koopman_lib`.

The reproduction layer: experiments with declared results, the scorecard, the benchmarks, the
chapter modules and the book build. It imports the core (:mod:`koopman_lib`); the core never
imports it. It reads and writes the checkout's ``notebooks/``, ``book/`` and ``results/``
(:mod:`koopman_repro.paths` resolves them), so it needs a checkout of the repository.
"""
