"""The columns a table's spec names (primary key, date field, SCD2 tracked columns), checked against a
file's header: a name that is not there is an :class:`~snapcdc.engine.spec.InputError` that suggests
the closest column (a difference of case first), or says that the header looks split by another
delimiter. Pure; both engines call it before reading rows."""

from __future__ import annotations

from collections.abc import Sequence

from snapcdc.engine.spec import InputError, TableSpec

_DELIMITERS = (("\t", "tab", "\\t"), (",", "comma", ","), (";", "semicolon", ";"), ("|", "pipe", "|"))


def named_columns(spec: TableSpec) -> list[tuple[str, str]]:
    """(role, column) for every column the spec names."""
    named = [("primary key column", key) for key in spec.primary_key]
    if spec.date_field is not None:
        named.append(("date field", spec.date_field))
    named += [("SCD2 tracked column", column) for column in spec.history_columns]
    return named


def closest(name: str, names: Sequence[str]) -> str | None:
    """The header column ``name`` most likely meant: the same in another case, else a close spelling."""
    folded = [n for n in names if n.casefold() == name.casefold()]
    if folded:
        return folded[0]
    import difflib  # only a refused file's message needs it: not imported by every run (cold start)

    matches = difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)
    if not matches:
        lowered = {n.casefold(): n for n in names}
        matches = [lowered[m] for m in difflib.get_close_matches(name.casefold(), list(lowered), n=1, cutoff=0.75)]
    return matches[0] if matches else None


def check_named_columns(names: Sequence[str], spec: TableSpec, source: str, delimiter: str) -> None:
    """Raise :class:`InputError` (line 1 of ``source``) unless every column the spec names is in ``names``."""
    missing = [(role, column) for role, column in named_columns(spec) if column not in names]
    if not missing:
        return
    if len(names) == 1:
        for other, label, shown in _DELIMITERS:
            if other != delimiter and other in names[0]:
                raise InputError(
                    source,
                    1,
                    f"1 column found with delimiter {delimiter!r}; the file looks {label}-separated "
                    f"(delimiter {shown!r})",
                )
    parts = []
    for role, column in missing:
        guess = closest(column, names)
        parts.append(f"{role} {column!r} is not in the header" + (f" (did you mean {guess!r}?)" if guess else ""))
    shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
    raise InputError(source, 1, "; ".join(parts) + f"; the header has: {shown}")
