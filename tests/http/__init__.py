"""The receiver over HTTP: a real receiver on a loopback port, real signatures, a real
database (or a port that counts the connections it must never get). Status codes and
bodies, limits before the database, unusable bodies kept as bytes, retries and the
mapping of database errors, the gate where deliveries wait for a connection, group
commit and the Citus delegation switch as the receiver drives them, PostgreSQL going
away, `optiqoflow serve` as a process, fuzzing; and the receiver's parts tested without
HTTP (signature schemes, the strict JSON check, configuration). See docs/payloads.md.
"""
