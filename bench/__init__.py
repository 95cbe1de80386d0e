"""Reproducible benchmarks of optiqoflow, each against baselines measured in the same run.

`python -m bench all` (full run) or `python -m bench all --quick`; see bench/__main__.py
and BENCHMARKS.md.
"""
