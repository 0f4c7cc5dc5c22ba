"""``field__any=values``: the ``__in`` lookup with its values as one array parameter.

Django compiles ``field__in=values`` into ``IN (%s, %s, …)``: every value is resolved,
adapted and sent as a parameter of its own, and psycopg splits a statement that long again
at every execution (it caches only short ones). On the engine's every-minute paths, where a
tick asks about every due campaign of every practice (thousands of ids), that was more of an
idle tick's time than PostgreSQL's. ``field__any`` means the same rows; on PostgreSQL it is
``field = ANY(%s::type[])`` with one parameter, whatever the number of values; elsewhere it
is ``IN (…)``. Registered on every field by ``TrackstatConfig.ready``.
"""

from __future__ import annotations

import re

from django.core.exceptions import EmptyResultSet
from django.db.models import Field, ForeignObject
from django.db.models.fields.related_lookups import RelatedIn
from django.db.models.lookups import In


class _ArrayParameter:
    lookup_name = "any"

    def as_postgresql(self, compiler, connection):
        if not self.rhs_is_direct_value():
            return self.as_sql(compiler, connection)  # a subquery: as ``__in``
        field = self.lhs.output_field
        values = [
            field.get_db_prep_value(value, connection, prepared=True)
            for value in dict.fromkeys(self.rhs)  # distinct, in order
            if value is not None
        ]
        if not values:
            raise EmptyResultSet
        lhs, lhs_params = self.process_lhs(compiler, connection)
        # The column's type without its modifiers: a cast to varchar(64) or numeric(10, 2)
        # would cut or round a value, which then matches a row that ``__in`` would not.
        base = re.sub(r"\(.*\)", "", field.cast_db_type(connection)).strip()
        return f"{lhs} = ANY(%s::{base}[])", (*lhs_params, values)


class AnyOf(_ArrayParameter, In):
    pass


class RelatedAnyOf(_ArrayParameter, RelatedIn):
    """On a foreign key: its values may be model instances, as with ``__in``."""


def lookups_register() -> None:
    Field.register_lookup(AnyOf)
    ForeignObject.register_lookup(RelatedAnyOf)
