"""Operations: what a DBA runs, in psql or through the `optiqoflow` command. Log
retention and pruning, refused deliveries and replay, sync health and `status`,
`reconcile` against the source, `charts deps`, and the migrations (Alembic owns the
schema, db/functions is the one source of every function, `optiqoflow freeze`). The
commands run in-process through operations.cli.main against the test's database
(docs/operations.md).
"""
