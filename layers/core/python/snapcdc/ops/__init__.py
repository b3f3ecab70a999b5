"""Operator commands over a bucket: verify, replay, ingest."""
