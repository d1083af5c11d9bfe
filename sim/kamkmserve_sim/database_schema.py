"""The simulated app's database: kamkmserve's tables (docs/reference/kamkmserve.md §5.2), the statements the scenarios
run, and the errors the app's driver reports. Both database backends (in memory and real PostgreSQL) use these, so the
facts they show are the same.

Statements are printed the way drizzle-orm writes them (lower-case keywords, quoted identifiers, ``$n``
parameters): that is what ``pg_stat_activity``, ``pg_stat_statements`` and Sentry's span descriptions show.
"""

from __future__ import annotations

from kamkmserve_sim.collector import AppError

ORDER_TABLE = "kamkmserve_order"
LINE_ITEM_TABLE = "kamkmserve_order_line_item"
USER_TABLE = "kamkmserve_user"
SLOW_COLUMN = "user_id"  # what the new release's query filters on; the schema has no index on it
JOB_APP_PREFIX = "kamkmserve-jobs:"
APP_NAME = "kamkmserve"
LOCK_TIMEOUT_MS = 2000  # the app's driver gives up waiting for a row lock after this long
SLOW_RELEASE = "v1.6.0"

# Columns per table, as in src/server/db/schema.ts (what create-index requests are checked against).
COLUMNS: dict[str, tuple[str, ...]] = {
    USER_TABLE: ("id", "clerk_user_id", "email", "name", "role", "created_at", "updated_at", "referred_by_id"),
    ORDER_TABLE: ("id", "user_id", "coupon_id", "status", "currency", "total_amount", "requirements", "suggestions",
                  "preferences", "questions", "metadata", "referral_id", "created_at", "updated_at"),
    LINE_ITEM_TABLE: ("id", "order_id", "service_id", "unit_price", "quantity", "total_price", "created_at"),
    "kamkmserve_cart": ("id", "user_id", "created_at", "updated_at"),
    "kamkmserve_cart_item": ("id", "cart_id", "service_id", "quantity", "created_at", "updated_at"),
    "kamkmserve_service": ("id", "name", "description", "price", "category", "thumbnail_url", "image_urls",
                           "created_at", "updated_at"),
}

# v1.6.0's checkout first looks up the customer's recent orders: a filter on an unindexed column.
SLOW_QUERY = (
    'select "id", "status", "total_amount", "created_at" from "kamkmserve_order" '
    'where "kamkmserve_order"."user_id" = $1 order by "kamkmserve_order"."created_at" desc limit $2'
)
# The report-export job marks a batch of paid orders as exported, inside the transaction it then leaves open.
EXPORT_UPDATE = (
    'update "kamkmserve_order" set "metadata" = $1, "updated_at" = now() '
    'where "kamkmserve_order"."status" = $2 and "kamkmserve_order"."created_at" < $3'
)
# PATCH /api/admin/orders/[id] (src/app/api/admin/orders/[id]/route.ts): staff moving an order along.
STATUS_UPDATE = 'update "kamkmserve_order" set "status" = $1 where "kamkmserve_order"."id" = $2 returning "id"'
INSERT_ORDER = (
    'insert into "kamkmserve_order" ("id", "user_id", "coupon_id", "status", "currency", "total_amount", '
    '"requirements", "suggestions", "preferences", "questions", "metadata", "referral_id", "created_at", '
    '"updated_at") values (default, $1, default, default, $2, $3, $4, default, default, default, default, '
    'default, default, $5) returning "id"'
)

LOCK_TIMEOUT_MESSAGE = "canceling statement due to lock timeout"


def lock_timeout_error(message: str = LOCK_TIMEOUT_MESSAGE) -> AppError:
    """What @neondatabase/serverless throws when PostgreSQL cancels a statement that waited too long."""
    return AppError(
        name="NeonDbError",
        message=message,
        stack=(f"NeonDbError: {message}\n"
               "    at execute (/var/task/node_modules/@neondatabase/serverless/index.js:1552:48)\n"
               "    at async PATCH (/var/task/.next/server/app/api/admin/orders/[id]/route.js:1:2210)"),
    )


# -- real PostgreSQL: the schema the simulator creates (enum and table names as in drizzle/0000_*.sql) ------

DDL = (
    """DO $$ BEGIN
         CREATE TYPE "public"."role" AS ENUM('USER', 'ADMIN', 'SUPERADMIN');
       EXCEPTION WHEN duplicate_object THEN null; END $$""",
    """DO $$ BEGIN
         CREATE TYPE "public"."order_status" AS ENUM('PENDING', 'PAID', 'IN_TECHNICAL_REVIEW', 'APPROVED',
                                                     'FAILED', 'REFUNDED', 'CANCELED');
       EXCEPTION WHEN duplicate_object THEN null; END $$""",
    """CREATE TABLE IF NOT EXISTS "kamkmserve_user" (
         "id" text PRIMARY KEY DEFAULT gen_random_uuid()::text NOT NULL,
         "clerk_user_id" text NOT NULL, "email" text NOT NULL, "name" text,
         "role" "role" DEFAULT 'USER' NOT NULL,
         "created_at" timestamp with time zone DEFAULT now() NOT NULL,
         "updated_at" timestamp with time zone NOT NULL, "referred_by_id" text,
         CONSTRAINT "user_clerk_user_id_unique" UNIQUE("clerk_user_id"),
         CONSTRAINT "user_email_unique" UNIQUE("email"))""",
    """CREATE TABLE IF NOT EXISTS "kamkmserve_order" (
         "id" text PRIMARY KEY DEFAULT gen_random_uuid()::text NOT NULL,
         "user_id" text NOT NULL REFERENCES "kamkmserve_user"("id"), "coupon_id" text,
         "status" "order_status" DEFAULT 'PENDING' NOT NULL, "currency" text DEFAULT 'USD' NOT NULL,
         "total_amount" integer NOT NULL, "requirements" text DEFAULT '' NOT NULL, "suggestions" text,
         "preferences" text, "questions" text, "metadata" text, "referral_id" text,
         "created_at" timestamp with time zone DEFAULT now() NOT NULL,
         "updated_at" timestamp with time zone NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS "kamkmserve_order_line_item" (
         "id" text PRIMARY KEY DEFAULT gen_random_uuid()::text NOT NULL,
         "order_id" text NOT NULL,
         "service_id" text NOT NULL, "unit_price" integer NOT NULL, "quantity" integer DEFAULT 1 NOT NULL,
         "total_price" integer NOT NULL, "created_at" timestamp with time zone DEFAULT now() NOT NULL)""",
)

USERS = 2000
ORDERS = 100_000  # enough that a sequential scan reads real pages, small enough to build in about a second
LINE_ITEMS = 20_000
EXPORT_CUTOFF_DAYS = 300

SEED = (
    f"""INSERT INTO "kamkmserve_user" ("id", "clerk_user_id", "email", "updated_at")
        SELECT 'usr_' || lpad(g::text, 6, '0'), 'user_' || md5(g::text), 'customer' || g || '@example.com', now()
        FROM generate_series(1, {USERS}) g""",
    f"""INSERT INTO "kamkmserve_order" ("user_id", "status", "total_amount", "created_at", "updated_at")
        SELECT 'usr_' || lpad((1 + g % {USERS})::text, 6, '0'),
               (ARRAY['PENDING','PAID','IN_TECHNICAL_REVIEW','APPROVED','FAILED','REFUNDED','CANCELED'])
                   [1 + (g * 7919) % 7]::order_status,
               1000 + (g * 37) % 90000, now() - (g % 365) * interval '1 day', now()
        FROM generate_series(1, {ORDERS}) g""",
    f"""INSERT INTO "kamkmserve_order_line_item" ("order_id", "service_id", "unit_price", "quantity", "total_price")
        SELECT "id", 'svc_web_design', 4900, 1, 4900 FROM "kamkmserve_order" LIMIT {LINE_ITEMS}""",
)
# No foreign key from line items to orders: checking 20,000 of them would count as index scans of the order
# table and blur the scan statistics the slow-query scenario is about.
ANALYZE = 'ANALYZE "kamkmserve_user", "kamkmserve_order", "kamkmserve_order_line_item"'
# Counters since the scenario started: the table's and its indexes' (a table's idx_scan sums its indexes').
RESET_ORDER_COUNTERS = """
SELECT pg_stat_reset_single_table_counters(oid) FROM (
    SELECT 'public.kamkmserve_order'::regclass::oid AS oid
    UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = 'public.kamkmserve_order'::regclass
) t
"""

# The same statements with the placeholders PostgreSQL's driver takes (psycopg, via SQLAlchemy text()).
PG_SLOW_QUERY = (
    'select "id", "status", "total_amount", "created_at" from "kamkmserve_order" '
    'where "kamkmserve_order"."user_id" = :user_id order by "kamkmserve_order"."created_at" desc limit :limit'
)
PG_EXPORT_UPDATE = (
    'update "kamkmserve_order" set "metadata" = :metadata, "updated_at" = now() '
    'where "kamkmserve_order"."status" = :status and "kamkmserve_order"."created_at" < '
    f"now() - interval '{EXPORT_CUTOFF_DAYS} days'"
)
PG_LOCKED_IDS = (
    'select "id" from "kamkmserve_order" where "status" = \'PAID\' and "created_at" < '
    f"now() - interval '{EXPORT_CUTOFF_DAYS} days' order by \"id\" limit 20"
)
PG_STATUS_UPDATE = 'update "kamkmserve_order" set "status" = :status where "kamkmserve_order"."id" = :id returning "id"'
# A valid index whose first key column is the slow query's column (pg_index.indkey is 1-based attnums).
PG_SLOW_COLUMN_INDEXED = """
SELECT EXISTS (
    SELECT 1 FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = 'public.kamkmserve_order'::regclass AND a.attname = :column
      AND i.indisvalid AND i.indisready
)
"""
PG_SLOW_COLUMN_INDEXES = """
SELECT c.relname FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = 'public.kamkmserve_order'::regclass AND a.attname = :column
"""
