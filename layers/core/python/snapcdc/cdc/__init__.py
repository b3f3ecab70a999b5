"""The CDC stage: a raw snapshot -> change files, feeds, schema migration, Glue catalog sync, routing to Spark."""
