"""Apache Iceberg tables in the Glue Data Catalog, kept by the CDC stage (``docs/iceberg.md``).

Per table that enables them (``"iceberg": true``): ``<table>``, the current state, one Iceberg
commit per accepted source snapshot; ``<table>_changes``, the change stream, one append per snapshot.

- :mod:`.names`: the tables' names, and the rule mapping source columns to Iceberg column names;
- :mod:`.schema`: schema evolution by Iceberg's rules (add, promote, retire a column whose type
  Iceberg cannot change);
- :mod:`.tables`: create/load the tables, evolve their schema;
- :mod:`.files`: the tables' own data files (written, then read back as Iceberg entries);
- :mod:`.commit`: one commit per source snapshot, exactly once, in order, retried on conflict;
- :mod:`.sync`: what the CDC stage and replay call;
- :mod:`.check`: what ``verify`` checks;
- :mod:`.maintenance`: snapshot retention and compaction;
- :mod:`.catalog`: pyiceberg's Glue catalog from a Glue client.

Importing this package imports pyiceberg: the stage imports it only when a table enables Iceberg.
"""
