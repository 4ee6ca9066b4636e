"""``make bench``: Switchyard measured at managed-services scale.

``python -m bench.run`` seeds a fresh database (PostgreSQL ``<name>_bench`` when ``DATABASE_URL``
is set, else a SQLite file under ``var/bench/``), measures the directory, the access-matrix export
and the onboarding workflow as ratios against the floor the same machine sets (a hand-written SQL
query, a plain boto3 script), writes ``bench/results.json`` and prints a table.
"""
