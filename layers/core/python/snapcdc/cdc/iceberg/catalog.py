"""pyiceberg's Glue catalog, built from the clients the caller already has.

The Glue client is passed in (as everywhere in snapcdc); pyiceberg writes the tables' metadata and
data files through pyarrow's S3 file system, which takes the process's credentials (the Lambda's
role, the Glue job's role) and, off AWS, the endpoint of the embedded AWS (``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import os
from typing import Any

from pyiceberg.catalog.glue import GlueCatalog


def glue_catalog(glue_client: Any, region: str | None = None, s3_endpoint: str | None = None) -> GlueCatalog:
    """A Glue catalog on ``glue_client``; ``s3_endpoint`` (default: ``AWS_ENDPOINT_URL_S3`` or
    ``AWS_ENDPOINT_URL``, unset on AWS) for the file system."""
    properties = {"s3.region": region or glue_client.meta.region_name}
    endpoint = s3_endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        properties["s3.endpoint"] = endpoint
    return GlueCatalog("snapcdc", client=glue_client, **properties)
