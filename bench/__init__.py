"""
Benchmarks for msnp: a load generator speaking MSNP over TCP to a server
the benchmark starts itself, and the figures it measures.

Run C{python -m bench SCENARIO} (or C{make bench} for all of them); see
bench/README.md for the scenarios, the figures and how to reproduce them.
"""
