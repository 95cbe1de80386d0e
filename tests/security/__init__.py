"""Security: reproductions of attacks, each a test of the outcome that stops it. A
reviewer runs them alone with `pytest tests/security`. Rights of the database roles
(a trigger that would run as the owner, a version a dashboard user could pin, roles
grant_tenant cannot limit, a migration without a superuser), and more as they are found.
"""
