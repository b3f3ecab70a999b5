"""The payloads the demo and end-to-end tests send have the shape of the real ones in tests/events/."""

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event
from snapcdc_dev.events import s3_object_created_event, scheduled_event

EVENTS = Path(__file__).parents[1] / "events"


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def test_scheduled_event_has_the_shape_of_a_real_one():
    real = json.loads((EVENTS / "eventbridge_schedule.json").read_text())
    built = scheduled_event(datetime(2026, 1, 5, 9, tzinfo=UTC))
    assert _shape(built) == _shape(real)
    assert EventBridgeEvent(built).time == "2026-01-05T09:00:00Z"


def test_s3_event_has_the_shape_of_a_real_one_and_url_encodes_keys():
    real = json.loads((EVENTS / "s3_object_created.json").read_text())
    key = "lake/raw/clientes/snapshot=20260105T090000Z/clientes 2026.csv"
    built = s3_object_created_event("bucket", [(key, 10, '"abc"')])
    assert _shape(built) == _shape(real)
    record = next(S3Event(built).records)
    assert record.s3.get_object.key == "lake/raw/clientes/snapshot%3D20260105T090000Z/clientes+2026.csv"
    assert unquote_plus(record.s3.get_object.key) == key
