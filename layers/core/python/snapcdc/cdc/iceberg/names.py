"""Names in the Iceberg tables: the tables' names and the rule that maps a source column to an Iceberg column.

Athena (and Glue, which stores names lower-cased) folds ``DtCriacao`` and ``dtcriacao`` into one
column; accents and spaces make names a query must quote, and some engines fold those too. So an
Iceberg column is named by one documented rule (``docs/iceberg.md``, "Column names"):

1. accents are dropped (Unicode NFKD, combining marks removed): ``Descrição`` -> ``Descricao``;
2. lower-cased: ``descricao``;
3. every character outside ``[a-z0-9_]`` becomes ``_``: ``valor total`` -> ``valor_total``;
4. a name starting with a digit gets a leading ``_``: ``1st`` -> ``_1st``.

Two source columns that map to one name are refused (:class:`ColumnNameError`, naming both), never
merged; so is a source column that maps onto a column the pipeline adds (``_cdc_operation``...).
The mapping is a pure function of the name, so every snapshot maps a column the same way, and the
source name is kept as the Iceberg field's ``doc``. Iceberg reads columns by field id, so renaming
costs nothing at read time (unlike the Hive tables, whose Parquet columns must match by name).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from snapcdc.errors import PermanentError

CHANGES_SUFFIX = "_changes"
_OUTSIDE = re.compile(r"[^a-z0-9_]")


class ColumnNameError(PermanentError, ValueError):
    """Source columns whose Iceberg names would collide; the message names them."""


def current_table(table: str) -> str:
    """The Iceberg table holding ``table``'s current state (one commit per accepted snapshot)."""
    return table


def changes_table(table: str) -> str:
    """The Iceberg table holding ``table``'s change stream (one append per accepted snapshot)."""
    return f"{table}{CHANGES_SUFFIX}"


def iceberg_column(source: str) -> str:
    """The Iceberg name of a source column, by the rule of this module's docstring."""
    decomposed = unicodedata.normalize("NFKD", source)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    name = _OUTSIDE.sub("_", plain)
    if not name or name[0].isdigit():
        name = f"_{name}"
    return name


def column_mapping(sources: Iterable[str], reserved: Iterable[str] = ()) -> dict[str, str]:
    """Each source column's Iceberg name; :class:`ColumnNameError` when two fold into one (or onto a
    ``reserved`` name, the pipeline's own columns)."""
    mapping: dict[str, str] = {}
    owner: dict[str, str] = {name: f"the pipeline's column {name}" for name in reserved}
    for source in sources:
        name = iceberg_column(source)
        if name in owner:
            raise ColumnNameError(
                f"columns {owner[name]!r} and {source!r} would both be Iceberg column {name!r} "
                "(Athena folds case, accents and spaces); rename one in the source or leave iceberg off "
                "for this table"
            )
        owner[name] = source
        mapping[source] = name
    return mapping
