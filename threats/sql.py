"""SQL written by hand for the per-threat analysis path, with the ORM's types going in and out.

Why: these statements run for every analysed threat, and building and compiling their ORM
queries cost more CPU than running the statements (docs/performance.md, "Where the time goes":
Analysis, which has the measurements); so the few statements on that path are written here once,
in the SQL that SQLite (3.35+) and PostgreSQL both run: `->>`, `RETURNING`,
`INSERT ... ON CONFLICT ... DO UPDATE`. Each function that runs a statement says in one line why
not the ORM. Everywhere else, use the ORM.

Values go in through each model field's own `get_db_prep_value`, and rows come back through the
converters the ORM itself applies, so callers get exactly what a queryset would give them: aware
datetimes, UUIDs, decoded JSON, booleans, model instances.

Statements run on Django's own cursor (`connection.cursor()`): Django's database errors, query
logging (`connection.queries`) and `execute_wrapper` hooks as for any query. Nothing here calls
Django's private cursor internals (`_cursor` says what it touches; tests/test_sql.py checks).
"""

import weakref

from django.db import DEFAULT_DB_ALIAS, connections


def _connection():
    return connections[DEFAULT_DB_ALIAS]


def _cursor(connection):
    """`connection.cursor()`, Django's cursor, whose DB-API cursor (its `.cursor`) is, on
    PostgreSQL, a server-binding psycopg `Cursor` on the same psycopg connection instead of
    Django's client-binding `ClientCursor`. psycopg prepares a statement a server-binding cursor
    has run `prepare_threshold` times (settings.py sets it; client-binding cursors never prepare,
    and would inline the binary `%b` arrays of `_rows` as escaped text), so each statement here is
    parsed and planned once per connection (docs/performance.md: prepared statements on PostgreSQL).

    Django's documented `connection.cursor()` opens the connection, checks thread sharing, and
    wraps errors (django.db's), logging and execute wrappers around whatever DB-API cursor it holds;
    the one undocumented contact is that attribute, `.cursor`, replaced here (set by the wrapper's
    constructor, read by Django's own backends: the PostgreSQL debug wrapper's `copy`). The rest
    is psycopg's public API: the DB-API cursor's `.connection`, `Cursor(connection)`, its prepare."""
    cursor = connection.cursor()
    if connection.vendor == "postgresql":
        import psycopg

        if isinstance(cursor.cursor, psycopg.ClientCursor):  # not when OPTIONS has server_side_binding
            try:
                client, cursor.cursor = cursor.cursor, psycopg.Cursor(cursor.connection)
                client.close()
            except BaseException:
                cursor.close()
                raise
    return cursor


class Columns:
    """Some concrete fields of one model, in model order: their SQL list and how rows read back.

    `str(columns)` is the column list for a SELECT or RETURNING clause.
    """

    def __init__(self, model, names=None):
        fields = model._meta.concrete_fields
        if names is not None:
            known = {f.name for f in fields} | {f.attname for f in fields}
            unknown = set(names) - known
            if unknown:
                raise ValueError(f"{model.__name__} has no column {sorted(unknown)}")
            fields = [f for f in fields if f.name in names or f.attname in names]
        self.model, self.fields = model, tuple(fields)
        self.attnames = [f.attname for f in self.fields]
        self._sql = ", ".join(f.column for f in self.fields)
        self._converters = weakref.WeakKeyDictionary()  # per connection object (one per thread)

    def __str__(self):
        return self._sql

    def rows(self, sql, params):
        """Run `sql` (whose result columns are these) and return its rows as lists of Python values.
        Why not the ORM: the queryset for each such read costs more to build and compile than to run (docs/performance.md)."""
        connection = _connection()
        with _cursor(connection) as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        converters = self._converters_for(connection)
        rows = []
        for row in fetched:
            row = list(row)
            for index, convert, expression in converters:
                row[index] = convert(row[index], expression, connection)
            rows.append(row)
        return rows

    def instances(self, sql, params):
        """The rows of `sql` as model instances (fields not selected are deferred, as with `.only()`).
        Why not the ORM: `rows` says; `from_db` is what a queryset calls for each row."""
        return [self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, row) for row in self.rows(sql, params)]

    def _converters_for(self, connection):
        found = self._converters.get(connection)
        if found is None:
            found = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.model._meta.db_table)
                for convert in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
                    found.append((index, convert, column))
            self._converters[connection] = found
        return found


def param(model, name, value):
    """`value` as the database stores model field `name` (a field name or attname such as `customer_id`)."""
    return model._meta.get_field(name).get_db_prep_value(value, _connection(), prepared=False)


def placeholders(values):
    """`%s, %s, ...`: one per value (an IN list, a VALUES row)."""
    return ", ".join(["%s"] * len(values))


def column(model, name):
    return model._meta.get_field(name).column


def insert(instance):
    """Save a new model instance with one INSERT ... RETURNING its database-generated key: what
    `Model.objects.create` does (pre_save hooks such as auto_now_add run; no signals are sent).
    Why not the ORM: `insert_all` says."""
    return insert_all([instance])[0]


def insert_all(instances):
    """`insert` for new instances of one model: one INSERT of every row, keys handed out in list order.
    Why not the ORM: `bulk_create` compiles a statement per call and, on PostgreSQL, per number of rows (docs/performance.md)."""
    model, connection = type(instances[0]), _connection()
    generated = [f for f in model._meta.concrete_fields if f.db_returning]
    fields = [f for f in model._meta.concrete_fields if not f.db_returning]
    source, values = _rows(fields, [[f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
                                    for instance in instances], connection)
    returning = Columns(model, [f.name for f in generated]) if generated else None
    statement = f"INSERT INTO {model._meta.db_table} ({', '.join(f.column for f in fields)}) SELECT * FROM {source}"
    if returning is None:
        execute(statement, values)
    else:
        for instance, row in zip(instances, returning.rows(f"{statement} RETURNING {returning}", values), strict=True):
            for name, value in zip(returning.attnames, row):
                setattr(instance, name, value)
    for instance in instances:
        instance._state.adding, instance._state.db = False, DEFAULT_DB_ALIAS
    return instances


def upsert(model, rows, unique, update):
    """Insert `rows` ({field name: value} dicts); a field a row leaves out gets the model's default,
    as with `Model(**row)` (no `pre_save` hooks such as auto_now run). Where a row collides with a
    stored one on the `unique` fields, that row's `update` fields are updated instead. One statement.
    Why not the ORM: `bulk_create(update_conflicts=True)` compiles per call and per number of rows (docs/performance.md)."""
    fields = [f for f in model._meta.concrete_fields if not f.auto_created and not (f.primary_key and f.db_returning)]
    known = {f.name for f in fields} | {f.attname for f in fields}
    for row in rows:
        if set(row) - known:
            raise ValueError(f"{model.__name__} has no field {sorted(set(row) - known)}")
    connection = _connection()
    source, values = _rows(fields, [[f.get_db_prep_value(_given(row, f), connection, prepared=False) for f in fields]
                                    for row in rows], connection)
    changes = ", ".join(f"{column(model, name)} = excluded.{column(model, name)}" for name in update)
    return execute(  # "WHERE true": SQLite's grammar needs a WHERE before ON CONFLICT after a SELECT
        f"INSERT INTO {model._meta.db_table} ({', '.join(f.column for f in fields)}) SELECT * FROM {source} WHERE true"
        f" ON CONFLICT ({', '.join(column(model, name) for name in unique)}) DO UPDATE SET {changes}", values)


def update_each(model, changes, where, where_params, returning):
    """Give each row its own values, in ONE statement: `changes` is {primary key: {field name:
    value}}, the same fields in every row; `where` (SQL and `where_params`) is a further condition
    on the row. Returns the `returning` Columns' rows of the rows it changed, in no set order.

    One statement, not one per row: on PostgreSQL the threats' statement trigger takes the running
    totals' row locks in key order (threats/stats.py), and only within one statement; a
    transaction of several UPDATEs could take them in an order another writer's does not.
    Why not the ORM: `bulk_update` is a CASE per field and row, compiled per call (docs/performance.md)."""
    connection, table, key = _connection(), model._meta.db_table, model._meta.pk
    names = list(next(iter(changes.values())))
    fields = [key, *(model._meta.get_field(name) for name in names)]
    source, values = _rows(fields, [[key.get_db_prep_value(pk, connection, prepared=False),
                                     *(field.get_db_prep_value(row[name], connection, prepared=False)
                                       for field, name in zip(fields[1:], names, strict=True))]
                                    for pk, row in changes.items()], connection)
    assigned = ", ".join(f"{field.column} = v.column{index}" for index, field in enumerate(fields[1:], start=2))
    return returning.rows(f"UPDATE {table} SET {assigned} FROM {source} WHERE {table}.{key.column} = v.column1"
                          f" AND {where} RETURNING {returning}", [*values, *where_params])


def _rows(fields, rows, connection):
    """Rows of prepared values (one per field) as a row source `v(column1, column2, ...)` for a
    FROM clause, and its parameters.

    SQLite: a VALUES list. PostgreSQL: unnest() of one array per column, so the statement has a
    parameter per column whatever the number of rows; psycopg parses a statement of more than 50
    parameters anew on every run (docs/agents.md has the measurement), and PostgreSQL
    would prepare and plan each number of rows as a statement of its own. The arrays go in binary
    (`%b`): in text, every JSON value would be escaped into the array literal, character by character."""
    if connection.vendor != "postgresql":
        one = f"({placeholders(fields)})"
        return f"(VALUES {', '.join([one] * len(rows))}) AS v", [value for row in rows for value in row]
    arrays = ", ".join(f"CAST(%b AS {_cast_type(field, connection)}[])" for field in fields)
    names = ", ".join(f"column{index}" for index in range(1, len(fields) + 1))
    return f"unnest({arrays}) AS v({names})", [list(column) for column in zip(*rows, strict=True)]


def _cast_type(field, connection):
    """The type of `field`'s column, as a cast names it: text for strings (a cast to varchar(n)
    would cut a long value short where the column refuses it)."""
    column_type = field.db_type(connection)
    return "text" if column_type.startswith("varchar") else column_type


def _given(row, field):
    for key in (field.name, field.attname):
        if key in row:
            return row[key]
    return field.get_default()


def execute(sql, values):
    """Run a statement that returns no rows; the number of rows it changed.
    Why not the ORM: only for the statements above, which the ORM would compile each time (docs/performance.md)."""
    with _cursor(_connection()) as cursor:
        cursor.execute(sql, values)
        return cursor.rowcount
