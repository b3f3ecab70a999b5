"""The bucket's contract: its key layout, the S3 store, the run records and manifests."""
