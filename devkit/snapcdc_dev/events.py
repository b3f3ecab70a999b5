"""Real-shaped Lambda event payloads, for invoking the handlers locally (demo, end-to-end tests).

The shapes match the JSON files in ``tests/events/`` (which a test checks), i.e. what EventBridge
and S3 deliver in AWS.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

ACCOUNT = "123456789012"
REGION = "us-east-1"


def scheduled_event(moment: datetime, rule: str = "snapcdc-schedule") -> dict[str, Any]:
    """An EventBridge "Scheduled Event" fired at ``moment``."""
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{rule}/{moment.isoformat()}")),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"],
        "detail": {},
    }


def s3_object_created_event(bucket: str, objects: list[tuple[str, int, str]]) -> dict[str, Any]:
    """An S3 notification with one ``ObjectCreated:Put`` record per (key, size, etag)."""
    records = []
    for key, size, etag in objects:
        records.append(
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AROAEXAMPLE:snapcdc-extract"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                    "x-amz-id-2": uuid.uuid4().hex,
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "snapcdc-raw-csv",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3EXAMPLE"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        # S3 URL-encodes keys in notifications (spaces become '+').
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag.strip('"'),
                        "sequencer": uuid.uuid4().hex[:18].upper(),
                    },
                },
            }
        )
    return {"Records": records}


class LocalLambdaContext:
    """The attributes of the Lambda context object that Powertools reads, and the remaining time,
    counted down from ``timeout_seconds`` (Lambda's maximum by default) as in AWS."""

    def __init__(self, function_name: str, memory_mb: int = 1024, timeout_seconds: float = 900.0) -> None:
        self._ends = time.monotonic() + timeout_seconds
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends - time.monotonic()) * 1000))
