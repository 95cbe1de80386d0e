"""Scale-out on Citus: optiqoflow.distribute() and the tenant-delegated write path.
Tests marked `citus` need the coordinator of a cluster in OPTIQOFLOW_CITUS_DSN and skip
without it; the unmarked ones check the same code paths on plain PostgreSQL
(docs/citus.md).
"""
