"""baseline: the schema, every function, row-level security, grants and partitions

Release 1.0's one baseline. It replaces the 23 revisions made before any release; a
database at the last of those (0023_static_writer_calls) is stamped to this revision by
`optiqoflow migrate` (optiqoflow_db.migrate.adopt_pre_release), any other is refused with
what to do. Three steps, in one transaction:

1. 0001_baseline.sql: schemas, roles (created NOLOGIN when missing), tables, mappings;
2. the function files as frozen in frozen/0001_baseline (helpers first);
3. 0001_baseline_after_functions.sql: what needs the functions (row-level security and
   grants on the target tables, the sync_health view, the first log partitions, the
   static writer switch).

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, run_sql

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

_HERE = Path(__file__).parent


def upgrade() -> None:
    run_sql(op, (_HERE / "0001_baseline.sql").read_text())
    apply_revision(op, revision)
    run_sql(op, (_HERE / "0001_baseline_after_functions.sql").read_text())


def downgrade() -> None:
    # Roles are cluster-wide and may be shared (Supabase): they stay.
    run_sql(
        op,
        """
        DROP TABLE IF EXISTS public.chart_table_dependencies, public.chart_data_cache,
                             public.charts;
        DROP SCHEMA IF EXISTS tenants CASCADE;
        DROP SCHEMA IF EXISTS optiqoflow CASCADE;
        DROP SCHEMA IF EXISTS optiqoflow_gen CASCADE;
        """,
    )
