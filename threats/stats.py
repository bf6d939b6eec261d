"""Exact running totals of the threats, for analytics that cost the same at 100 or 1,000,000 rows.

`ThreatCount` holds, per (customer, threat type, severity, status), how many threats there are and
the sums the analytics need (processing time, review flags, acknowledgement and resolution times,
acknowledged within SLA). Database triggers keep it: every INSERT, UPDATE and DELETE of a threat —
through the services, a bulk insert, a queryset `update()`, a cascade or retention — changes the
totals in the same transaction, so they are exact whenever the threats are. PostgreSQL uses
statement triggers with transition tables (one grouped upsert per statement, so a bulk insert of
1,000 alerts costs one upsert per bucket); SQLite uses row triggers.

The triggers' SQL is generated here, with the SLA minutes of `threats.choices`, and a migration
runs it, frozen (`MIGRATION`, threats/migrations/0020_threat_count_triggers.py: the triggers, then
the totals rebuilt from the threats). tests/test_stats.py fails when this code would generate other
SQL than that migration holds: a changed SLA or total needs a migration of its own. After every
`migrate`, `check_after_migrate` only verifies they are there and current, and raises if not: SQLite
rebuilds the threats table for most column changes, which drops its triggers without a word, so a
later migration that does that must run `MIGRATION`'s `install` again (tests would fail otherwise).
`install` and `rebuild` repair a database by hand.

Time-dependent figures (an open threat that passes its SLA deadline) cannot be kept by triggers;
the analytics count them as "unacknowledged open threats" (exact here) minus the ones still within
their deadline (a small index range of recent threats).
"""

from django.db import connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Sum

from .choices import SLA_MINUTES
from .models import ThreatCount

TABLE = ThreatCount._meta.db_table
THREATS = "threats_threat"
KEY = ("customer_id", "threat_type", "severity", "status")
SUMS = ("n", "analyzed", "processing_ms", "review", "acknowledged", "acknowledge_us", "closed", "resolve_us",
        "within_sla")
MIGRATION = ("threats", "0020_threat_count_triggers")  # the migration that installs the current triggers
PG_FUNCTION = "threats_count_changes"
PG_TRIGGERS = {"INSERT": "REFERENCING NEW TABLE AS new_rows", "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
               "DELETE": "REFERENCING OLD TABLE AS old_rows"}
SQLITE_TRIGGERS = ("threats_count_insert", "threats_count_update", "threats_count_delete")
# The columns a total depends on: an UPDATE that changes none of them (analysis status, updated_at,
# the verdict's JSON) leaves the totals alone.
WATCHED = ("customer_id", "threat_type", "severity", "status", "processing_ms", "requires_human_review",
           "received_at", "acknowledged_at", "closed_at")


# --- The per-threat contribution, as SQL over a row alias -------------------------------------------


def _micros(vendor, column):
    if vendor == "postgresql":
        return f"(EXTRACT(EPOCH FROM {column}) * 1000000)::bigint"
    # Django stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC): whole seconds + the fraction.
    # The seconds come from the first 19 characters only: strftime('%s') of the whole text rounds a
    # fraction of .9995 or more up to the next second, which the fraction would then count twice.
    return (f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
            f" + CAST(substr({column} || '.000000', 21, 6) AS INTEGER))")


def _since_received(vendor, row, column):
    """`column - received_at` in microseconds (0 when unset)."""
    if vendor == "postgresql":
        span = _micros(vendor, f"({row}.{column} - {row}.received_at)")
    else:
        span = f"({_micros(vendor, f'{row}.{column}')} - {_micros(vendor, f'{row}.received_at')})"
    return f"CASE WHEN {row}.{column} IS NULL THEN 0 ELSE {span} END"


def contribution(vendor, row, sign=1):
    """SQL expressions, in SUMS order, for what one threat row (alias `row`) adds to its bucket."""
    flag = "CASE WHEN {} THEN {} ELSE 0 END".format
    one = "-1" if sign < 0 else "1"
    minus = "-" if sign < 0 else ""
    within = " OR ".join(
        f"({row}.severity = '{severity}' AND {_since_received(vendor, row, 'acknowledged_at')} <= {minutes * 60_000_000})"
        for severity, minutes in sorted(SLA_MINUTES.items())
    )
    return [
        one,
        flag(f"{row}.processing_ms IS NOT NULL", one),
        f"{minus}COALESCE({row}.processing_ms, 0)",
        flag(f"{row}.requires_human_review", one),
        flag(f"{row}.acknowledged_at IS NOT NULL", one),
        f"{minus}({_since_received(vendor, row, 'acknowledged_at')})",
        flag(f"{row}.closed_at IS NOT NULL", one),
        f"{minus}({_since_received(vendor, row, 'closed_at')})",
        flag(f"{row}.acknowledged_at IS NOT NULL AND ({within})", one),
    ]


def _columns():
    return ", ".join(KEY + SUMS)


def _add_excluded(target):
    return ", ".join(f"{name} = {target}.{name} + excluded.{name}" for name in SUMS)


# --- PostgreSQL: statement triggers with transition tables -------------------------------------------


def _pg_rows(alias, sign):
    values = ", ".join(f"{expr} AS {name}" for expr, name in zip(contribution("postgresql", "r", sign), SUMS, strict=True))
    return f"SELECT {', '.join('r.' + k for k in KEY)}, {values} FROM {alias} r"


def _pg_upsert(sources):
    sums = ", ".join(f"sum({name})" for name in SUMS)
    changed = " OR ".join(f"sum({name}) <> 0" for name in SUMS)
    key = ", ".join(KEY)
    return (f"INSERT INTO {TABLE} AS c ({_columns()}) SELECT {key}, {sums} FROM ({' UNION ALL '.join(sources)}) d "
            f"GROUP BY {key} HAVING {changed} ORDER BY {key} "  # one lock order for every writer
            f"ON CONFLICT ({key}) DO UPDATE SET {_add_excluded('c')};")


def pg_function():
    insert = _pg_upsert([_pg_rows("new_rows", 1)])
    update = _pg_upsert([_pg_rows("new_rows", 1), _pg_rows("old_rows", -1)])
    delete = _pg_upsert([_pg_rows("old_rows", -1)])
    return (f"\nBEGIN\n  IF TG_OP = 'INSERT' THEN\n    {insert}\n  ELSIF TG_OP = 'UPDATE' THEN\n    {update}\n"
            f"  ELSE\n    {delete}\n  END IF;\n  RETURN NULL;\nEND;\n")


def _pg_installed(cursor):
    cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [PG_FUNCTION])
    found = cursor.fetchone()
    cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE 'threats_count_%%'",
                   [THREATS])
    return found is not None and found[0] == pg_function() and cursor.fetchone()[0] == len(PG_TRIGGERS)


def _pg_install():
    statements = [f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $body${pg_function()}$body$"]
    for operation, referencing in PG_TRIGGERS.items():
        name = f"threats_count_{operation.lower()}"
        statements += [f"DROP TRIGGER IF EXISTS {name} ON {THREATS}",
                       f"CREATE TRIGGER {name} AFTER {operation} ON {THREATS} {referencing} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"]
    return statements


# --- SQLite: row triggers ---------------------------------------------------------------------------


def _sqlite_upsert(row, sign):
    values = ", ".join([*(f"{row}.{k}" for k in KEY), *contribution("sqlite", row, sign)])
    return (f"INSERT INTO {TABLE} ({_columns()}) VALUES ({values}) "
            f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {_add_excluded(TABLE)};")


def sqlite_triggers():
    changed = " OR ".join(f"OLD.{name} IS NOT NEW.{name}" for name in WATCHED)
    return {
        "threats_count_insert": f"CREATE TRIGGER threats_count_insert AFTER INSERT ON {THREATS} BEGIN "
                                f"{_sqlite_upsert('NEW', 1)} END",
        "threats_count_update": f"CREATE TRIGGER threats_count_update AFTER UPDATE ON {THREATS} WHEN {changed} BEGIN "
                                f"{_sqlite_upsert('OLD', -1)} {_sqlite_upsert('NEW', 1)} END",
        "threats_count_delete": f"CREATE TRIGGER threats_count_delete AFTER DELETE ON {THREATS} BEGIN "
                                f"{_sqlite_upsert('OLD', -1)} END",
    }


def _sqlite_installed(cursor):
    cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [THREATS])
    found = {name: sql for name, sql in cursor.fetchall() if name in SQLITE_TRIGGERS}
    return found == sqlite_triggers()


def _sqlite_install():
    return [statement for name, sql in sqlite_triggers().items() for statement in (f"DROP TRIGGER IF EXISTS {name}", sql)]


# --- Install (a migration), check, repair ----------------------------------------------------------------


def install_statements(vendor):
    """Every statement that installs the current triggers and rebuilds the totals, in order: what
    `MIGRATION` runs, frozen. Run them in one transaction (PostgreSQL: the lock keeps writers out
    until it commits, so no threat is counted twice or lost while the totals are recounted)."""
    if vendor == "postgresql":
        return [*_lock(vendor), *_pg_install(), *_rebuild(vendor)]
    return [*_sqlite_install(), *_rebuild(vendor)]


def uninstall_statements(vendor):
    """What undoes `install_statements` (the totals stay as they were)."""
    if vendor == "postgresql":
        return [*(f"DROP TRIGGER IF EXISTS threats_count_{operation.lower()} ON {THREATS}" for operation in PG_TRIGGERS),
                f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()"]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in SQLITE_TRIGGERS]


class TotalsTriggersMissing(RuntimeError):
    """The threats table lacks the current totals triggers although `MIGRATION` is applied."""


def check_after_migrate(sender, using="default", **kwargs):
    """post_migrate receiver: a check, not an installer (migrations install the triggers). Raises
    when `MIGRATION` is applied but the triggers are missing or not what this code generates: the
    totals would drift from the threats without a word."""
    connection = connections[using]
    if MIGRATION not in MigrationRecorder(connection).applied_migrations() or installed(using):
        return
    raise TotalsTriggersMissing(
        f"{THREATS} lacks the analytics totals' triggers, or they are not the ones threats/stats.py generates. "
        f"A migration that rebuilds {THREATS} on SQLite (most column changes) drops them: end it with "
        f"migrations.RunPython({MIGRATION[1]}.install) (import it with importlib). A changed SLA or total needs a "
        f"migration of its own, like {MIGRATION[1]}. threats.stats.install() repairs a database by hand.")


def installed(using="default"):
    """Whether the threats table has the triggers this code generates."""
    connection = connections[using]
    with connection.cursor() as cursor:
        return _pg_installed(cursor) if connection.vendor == "postgresql" else _sqlite_installed(cursor)


def install(using="default", force=False):
    """Repair by hand: install the triggers (when missing or different) and rebuild the totals; True if it did."""
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if not force and (_pg_installed(cursor) if connection.vendor == "postgresql" else _sqlite_installed(cursor)):
            return False
        for statement in install_statements(connection.vendor):
            cursor.execute(statement)
    return True


def rebuild(using="default"):
    """Recount every total from the threats (after a bulk load with triggers off, or to repair)."""
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for statement in [*_lock(connection.vendor), *_rebuild(connection.vendor)]:
            cursor.execute(statement)


def _lock(vendor):
    # Writers wait (readers do not) while the totals are recounted, so none is counted twice or lost.
    return [f"LOCK TABLE {THREATS} IN SHARE ROW EXCLUSIVE MODE"] if vendor == "postgresql" else []


def _rebuild(vendor):
    key = ", ".join(f"t.{k}" for k in KEY)
    sums = ", ".join(f"sum({expr})" for expr in contribution(vendor, "t"))
    return [f"DELETE FROM {TABLE}", f"INSERT INTO {TABLE} ({_columns()}) SELECT {key}, {sums} FROM {THREATS} t GROUP BY {key}"]


# --- Read ----------------------------------------------------------------------------------------------


def totals(customer_ids=None):
    """(customer slug, customer name, threat_type, severity, status, *SUMS) for every bucket holding
    threats; `customer_ids` limits them to a customer scope (None = every customer)."""
    rows = ThreatCount.objects.filter(n__gt=0)
    if customer_ids is not None:
        rows = rows.filter(customer_id__in=customer_ids)
    return rows.values_list("customer__slug", "customer__name", "threat_type", "severity", "status", *SUMS)


def recount(customer_ids=None):
    """The same totals computed from the threats themselves (tests and `seed_scale --check`)."""
    connection = connections["default"]
    where = ""
    if customer_ids is not None:  # integers, inlined: a params list would make '%s' in strftime a placeholder
        where = f"WHERE t.customer_id IN ({', '.join(str(int(pk)) for pk in customer_ids) or 'NULL'})"
    key = ", ".join(f"t.{k}" for k in KEY)
    sums = ", ".join(f"sum({expr})" for expr in contribution(connection.vendor, "t"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {key}, {sums} FROM {THREATS} t {where} GROUP BY {key}")
        return {tuple(row[:4]): tuple(int(v) for v in row[4:]) for row in cursor.fetchall()}


def stored(customer_ids=None):
    """The stored totals in `recount`'s shape (buckets with threats only)."""
    rows = ThreatCount.objects.all()
    if customer_ids is not None:
        rows = rows.filter(customer_id__in=customer_ids)
    return {tuple(row[:4]): tuple(row[4:]) for row in rows.values_list(*KEY, *SUMS) if any(row[4:])}


def stored_count():
    """How many threats are stored (every customer): the sum of the totals, a few hundred rows."""
    return ThreatCount.objects.aggregate(n=Sum("n"))["n"] or 0
