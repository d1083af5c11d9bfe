-- Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d).
-- Two databases on one server: the Prefect server's own, and the remediation store both replicas share.
-- The store's tables are created by `remediate serve` itself (Alembic migrations, serialised by an
-- advisory lock, so both replicas may start at once); Prefect migrates its own database on start.
CREATE DATABASE prefect;
CREATE DATABASE remediate;
