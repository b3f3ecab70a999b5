"""The demo's Iceberg part: the Glue database on the embedded AWS, and a time-travel query read with pyiceberg."""

from __future__ import annotations

from typing import Any

DATABASE = "snapcdc_demo"


def create_database(aws: Any) -> dict[str, str]:
    """The Glue database of the Iceberg tables; the environment that makes the CDC function keep them."""
    aws.client("glue").create_database(DatabaseInput={"Name": DATABASE})
    from snapcdc.settings import Env

    return {Env.ICEBERG_DATABASE.value: DATABASE}


def time_travel(aws: Any, store: Any, config: Any, shown: int = 3) -> list[str]:
    """Per Iceberg-enabled table: the table as of its first and its last source snapshot (pyiceberg's
    scan of the Iceberg snapshot whose summary names it), and the keys whose rows differ."""
    from snapcdc.cdc.iceberg.commit import committed_snapshots
    from snapcdc.cdc.iceberg.names import iceberg_column
    from snapcdc.cdc.iceberg.sync import iceberg_lake

    lake = iceberg_lake(config, store, aws.client("glue"), DATABASE)
    lines: list[str] = []
    if lake is None:
        return lines
    for table in [t for t in config.tables if t.iceberg]:
        iceberg = lake.catalog.load_table(lake.identifier(table.name))
        commits = committed_snapshots(iceberg)
        (first, first_id), (last, last_id) = next(iter(commits.items())), list(commits.items())[-1]
        key = iceberg_column(table.primary_key[0])
        before = {r[key]: r for r in iceberg.scan(snapshot_id=first_id).to_arrow().to_pylist()}
        after = {r[key]: r for r in iceberg.scan(snapshot_id=last_id).to_arrow().to_pylist()}
        changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])[:shown]
        lines.append(
            f"iceberg {lake.identifier(table.name)}: {len(commits)} commits; "
            f"SELECT count(*) ... FOR VERSION AS OF {first_id} (snapshot {first}) -> {len(before)} rows, "
            f"FOR VERSION AS OF {last_id} (snapshot {last}) -> {len(after)} rows"
        )
        for k in changed:
            diff = {c: (before[k][c], after[k][c]) for c in after[k] if before[k].get(c) != after[k][c]}
            lines.append(f"  {key}={k}: " + ", ".join(f"{c} {old} -> {new}" for c, (old, new) in diff.items()))
    return lines
