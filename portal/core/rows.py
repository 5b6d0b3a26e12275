"""The reads of every authenticated request, in SQL built once per process.

Django compiles a queryset into SQL anew each time it is evaluated. For the
few reads that every request makes (its session, the logged-in account with
its member and office, an API token with the same), that compilation and the
building of the instances cost more than the query itself: some 0.3 ms for the
session and 0.8 ms for the account with `select_related`, on the bench
machine, against 0.2 ms for the same query written out (docs/performance.md).

`JoinedRow` is that query written out once, from the models' metadata: one
row of a model found by equality and comparison conditions, with the rows it
points to along forward foreign keys, as `select_related` would join them
(INNER JOIN, LEFT JOIN where the key may be NULL and below it). It returns the instance
the ORM would: every concrete field, read through the same converters of the
database backend and of the fields, and the related objects cached where
`select_related` caches them. Condition values are prepared by their fields,
as in a `filter()`. The SQL and converters are built at the first use on
each database alias and kept.

Only for those hot reads, whose shape never changes: everything else uses
the ORM. Tests compare each with its queryset (tests/core/test_rows.py).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connections
from django.db.models import Model


@dataclass(frozen=True)
class _Table:
    model: type[Model]
    path: str  # from the first table: "" for it, then "member", "member__cpam"…
    link: object  # the foreign key from the parent table; None for the first
    parent: int  # index of the parent table; -1 for the first
    fields: tuple  # concrete fields, in SELECT order
    attnames: list  # their attribute names, for `Model.from_db`
    pk_index: int  # where the primary key is among them

    @classmethod
    def of(cls, model, path: str, link, parent: int) -> "_Table":
        fields = tuple(model._meta.concrete_fields)
        attnames = [field.attname for field in fields]
        return cls(model, path, link, parent, fields, attnames, fields.index(model._meta.pk))


@dataclass(frozen=True)
class _Compiled:
    sql: str
    conditions: tuple  # the field of each parameter, in order
    converters: tuple  # (column index, its expression, its converters) where there are some


OPERATORS = {"exact": "= %s", "gt": "> %s", "lt": "< %s", "isnull": "IS NULL"}


class JoinedRow:
    """`model.objects.select_related(*related).filter(**conditions)[:1]`, written out.

    `related`: paths of forward foreign keys ("member", "account__member__cpam").
    `conditions`: lookups on the model or a related one ("pk", "state",
    "expires_at__gt", "account__state", "revoked_at__isnull"); `isnull`
    takes no value (always IS NULL), the others take theirs at `get()`, in
    their order.
    """

    def __init__(
        self, model: type[Model], *, related: Sequence[str] = (), conditions: Sequence[str]
    ):
        self.model = model
        self.conditions = tuple(conditions)
        self._tables = self._join(model, related)
        self._compiled: dict[str, _Compiled] = {}

    @staticmethod
    def _join(model, related) -> tuple[_Table, ...]:
        tables = [_Table.of(model, "", None, -1)]
        index = {"": 0}
        for path in related:
            parts = path.split("__")
            for depth in range(1, len(parts) + 1):
                key = "__".join(parts[:depth])
                if key in index:
                    continue
                parent = index["__".join(parts[: depth - 1])]
                link = tables[parent].model._meta.get_field(parts[depth - 1])
                if link.auto_created or not (link.many_to_one or link.one_to_one):
                    raise ValueError(f"{key}: not a forward foreign key")
                target = link.related_model
                index[key] = len(tables)
                tables.append(_Table.of(target, key, link, parent))
        return tuple(tables)

    def _compile(self, using: str) -> _Compiled:
        connection = connections[using]
        name = connection.ops.quote_name
        aliases = [name(f"t{i}") for i in range(len(self._tables))]
        columns, converters = [], []
        for i, table in enumerate(self._tables):
            for field in table.fields:
                col = field.get_col(f"t{i}")
                functions = connection.ops.get_db_converters(col) + field.get_db_converters(
                    connection
                )
                if functions:
                    converters.append((len(columns), col, tuple(functions)))
                columns.append(f"{aliases[i]}.{name(field.column)}")
        joins = [f"{name(self.model._meta.db_table)} {aliases[0]}"]
        outer = {0: False}  # below a LEFT JOIN, every join is one, as in select_related
        for i, table in enumerate(self._tables[1:], start=1):
            outer[i] = table.link.null or outer[table.parent]
            kind = "LEFT OUTER JOIN" if outer[i] else "INNER JOIN"
            joins.append(
                f"{kind} {name(table.model._meta.db_table)} {aliases[i]} ON "
                f"{aliases[table.parent]}.{name(table.link.column)} = "
                f"{aliases[i]}.{name(table.link.target_field.column)}"
            )
        paths = {table.path: i for i, table in enumerate(self._tables)}
        where, conditions = [], []
        for condition in self.conditions:
            parts = condition.split("__")
            lookup = parts.pop() if len(parts) > 1 and parts[-1] in OPERATORS else "exact"
            *path, last = parts
            table = paths["__".join(path)]
            meta = self._tables[table].model._meta
            field = meta.pk if last == "pk" else meta.get_field(last)
            where.append(f"{aliases[table]}.{name(field.column)} {OPERATORS[lookup]}")
            if lookup != "isnull":
                conditions.append(field)
        sql = (
            f"SELECT {', '.join(columns)} FROM {' '.join(joins)} "  # noqa: S608 (quoted names)
            f"WHERE {' AND '.join(where)} LIMIT 1"
        )
        return _Compiled(sql, tuple(conditions), tuple(converters))

    def get(self, *values, using: str = "default") -> Model | None:
        """The instance whose row meets the conditions, or None."""
        compiled = self._compiled.get(using)
        if compiled is None:
            compiled = self._compiled[using] = self._compile(using)
        if len(values) != len(compiled.conditions):
            raise TypeError(f"{len(compiled.conditions)} values expected, {len(values)} given")
        connection = connections[using]
        params = [
            field.get_db_prep_value(value, connection, prepared=False)
            for field, value in zip(compiled.conditions, values, strict=True)
        ]
        with hot_cursor(connection) as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        row = list(row)
        for index, col, functions in compiled.converters:
            for function in functions:
                row[index] = function(row[index], col, connection)
        return self._build(row, using)

    def _build(self, row: list, using: str) -> Model:
        instances = []
        start = 0
        for table in self._tables:
            values = row[start : start + len(table.attnames)]
            start += len(table.attnames)
            if values[table.pk_index] is None:
                instances.append(None)  # no row on a LEFT JOIN
                continue
            instances.append(table.model.from_db(using, table.attnames, values))
        for table, instance in zip(self._tables[1:], instances[1:], strict=True):
            parent = instances[table.parent]
            if parent is None:
                continue
            table.link.set_cached_value(parent, instance)
            if instance is not None and table.link.one_to_one:
                table.link.remote_field.set_cached_value(instance, parent)
        return instances[0]


def hot_cursor(connection):
    """A cursor for a query every request runs: prepared once run a few times, on
    PostgreSQL (portal/core/postgresql/base.py); Django's own elsewhere."""
    prepared = getattr(connection, "prepared_cursor", None)
    return prepared() if prepared is not None else connection.cursor()
