"""Sync semantics: what optiqoflow.apply_webhook (and apply_webhook_group) does with a
delivery, judged by the rows, tombstones, runs and logs it leaves. Versions and
de-duplication, DELETE and tombstones, FULL_SYNC runs, the BATCH envelope, schema
evolution, the writers generated per column set and the real-time fast path, group
commit's SQL side, the push log and dashboard cache invalidation every applied delivery
performs, and all of that under real concurrency and against a model (hypothesis). A
test belongs here when it calls the database as the receiver does and no HTTP is
involved; the rules themselves are written down in docs/semantics.md.
"""
