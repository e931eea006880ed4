"""The package's own published comparison: the parts of ``scripts/reproduce_results.py``, budget rows, the claims
table, and regenerating ``docs/results.md``."""
