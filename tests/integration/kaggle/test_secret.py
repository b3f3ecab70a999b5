"""The Kaggle credentials read through Powertools parameters, against moto's Secrets Manager (in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from snapcdc.errors import PermanentError
from snapcdc.extract.kaggle import KaggleCredentials, KaggleSecretError, read_credentials


@pytest.fixture
def secrets() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager")


def create(secrets: Any, name: str, text: str) -> str:
    arn: str = secrets.create_secret(Name=name, SecretString=text)["ARN"]
    return arn


def test_the_credentials_are_the_secrets_username_and_key(secrets):
    # Given
    arn = create(secrets, "snapcdc/kaggle", json.dumps({"username": " someone ", "key": "k-123"}))

    # When
    credentials = read_credentials(arn, secrets)

    # Then (stripped of blanks) and the key stays out of the repr
    assert credentials == KaggleCredentials("someone", "k-123")
    assert "k-123" not in repr(credentials)


def test_a_changed_secret_is_read_again_not_served_from_a_cache(secrets):
    # Given a secret read once, then rotated
    arn = create(secrets, "snapcdc/kaggle", json.dumps({"username": "u", "key": "old"}))
    read_credentials(arn, secrets)
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": "u", "key": "new"}))

    # When
    credentials = read_credentials(arn, secrets)

    # Then
    assert credentials.key == "new"


def test_a_missing_secret_names_the_secret_the_variable_and_the_code(secrets):
    # Given
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:snapcdc/nothing-AbCdEf"

    # When / Then
    with pytest.raises(KaggleSecretError) as failure:
        read_credentials(arn, secrets)
    assert str(failure.value) == f"Kaggle secret {arn} (KAGGLE_SECRET_ARN) cannot be read: ResourceNotFoundException"
    assert isinstance(failure.value, PermanentError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", 'must be a JSON object {"username": ..., "key": ...}'),
        ('["username", "key"]', 'must be a JSON object {"username": ..., "key": ...}'),
        ('{"username": "someone"}', "field 'key' is missing or empty"),
        ('{"key": "k"}', "field 'username' is missing or empty"),
        ('{"username": " ", "key": "k"}', "field 'username' is missing or empty"),
        ('{"username": "u", "key": 42}', "field 'key' is missing or empty"),
    ],
)
def test_a_malformed_secret_names_the_secret_and_what_is_wrong(secrets, text, message):
    # Given
    arn = create(secrets, "snapcdc/bad", text)

    # When / Then
    with pytest.raises(KaggleSecretError) as failure:
        read_credentials(arn, secrets)
    assert str(failure.value) == f"Kaggle secret {arn}{':' if 'field' in message else ''} {message}"


def test_a_binary_secret_that_is_not_text_is_not_a_json_object(secrets):
    # Given a secret stored as bytes that are not UTF-8
    arn = secrets.create_secret(Name="snapcdc/binary", SecretBinary=b"\xff\xfe")["ARN"]

    # When / Then
    with pytest.raises(KaggleSecretError, match="must be a JSON object"):
        read_credentials(arn, secrets)
