"""The test suite, grouped by behaviour: one subpackage per kind of promise the product
makes, so that a new test goes where the behaviour it checks lives.

- sync/: what optiqoflow.apply_webhook does with a delivery (the SQL side);
- isolation/: what keeps tenants apart, and who may read or change what;
- http/: the receiver over real loopback HTTP and its parts (signatures, JSON, config);
- operations/: the `optiqoflow` commands a DBA runs, and the migrations;
- convergence/: end-to-end runs that must converge to the source;
- citus/: scale-out on a Citus cluster (skipped without OPTIQOFLOW_CITUS_DSN).

Fixtures (a PostgreSQL server, a fresh migrated database per test) are in conftest.py;
what the tests share besides fixtures is in helpers.py and, for HTTP, http_helpers.py.
"""
