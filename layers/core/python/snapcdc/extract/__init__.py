"""The extract stage: Kaggle dataset -> raw CSVs in S3 (the stage, the Kaggle source, the safe zip, streaming)."""
