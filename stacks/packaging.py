"""What each function ships: asset folders, what they leave out, and the public layers' sizes.

Lambda refuses a function whose code plus layers exceed 250 MiB unzipped (262,144,000 bytes);
``tests/infra/test_package_size.py`` adds our assets (measured on disk) to the sizes below.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.kaggle_layer import REPO_ROOT

LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000
MIB = 1024 * 1024

EXTRACT_CODE_DIR = REPO_ROOT / "lambdas" / "extract"
CDC_CODE_DIR = REPO_ROOT / "lambdas" / "cdc"
SPARK_STATE_CODE_DIR = REPO_ROOT / "lambdas" / "spark_state"
CORE_LAYER_DIR = REPO_ROOT / "layers" / "core"
# The Glue job's entry script (the job's code is the core package, shipped to Glue as a zip).
SPARK_JOB_SCRIPT = REPO_ROOT / "glue" / "cdc_job.py"
# Development leftovers that must not ship (pip install -e writes the egg-info next to the package).
CODE_EXCLUDES = ("**/__pycache__", "**/*.pyc", ".pytest_cache", ".mypy_cache")
# What only the ``snapcdc`` console script uses: neither function imports it
# (tests/infra/test_package_size.py imports both handlers from the staged layer alone). The development
# harness (fake Kaggle, embedded moto, the demo) is not in the package at all: it is devkit/snapcdc_dev.
CLI_ONLY_PATHS = (
    "python/snapcdc/cli.py",
    "python/snapcdc/ops",
    "python/snapcdc/spark",  # the Glue job's code: the CDC function only starts the job
)
CORE_LAYER_EXCLUDES = (*CODE_EXCLUDES, "**/*.egg-info", "**/*.egg-info/**", *CLI_ONLY_PATHS)

# The kaggle layer as built by `make layers` (layers/build_layers.py) on 2026-11: 15.9 MB
# (15.2 MiB) unzipped, boto3/botocore removed. The size test measures the build folder
# when it exists and falls back to this bound (rounded up) when it does not.
KAGGLE_LAYER_BOUND_BYTES = 20 * MIB
# The iceberg layer as built by `make layers` on 2026-12: 4.6 MB unzipped (pyiceberg and the six
# packages it imports on the Glue catalog's path, native libraries stripped); bound rounded up.
# The CDC function's budget: 250 MiB - 210 MiB (AWS SDK for pandas) - 32 MiB (Powertools) - core.
ICEBERG_LAYER_BOUND_BYTES = 6 * MIB


@dataclass(frozen=True)
class PublishedLayer:
    arn_contains: str
    unzipped_bytes: int
    source: str


# Public layers we attach by ARN. Neither publisher lists exact unzipped sizes in its docs;
# the numbers are upper bounds with their evidence.
PUBLISHED_LAYERS = (
    PublishedLayer(
        arn_contains=":layer:AWSSDKPandas-Python312-Arm64:29",
        unzipped_bytes=210 * MIB,
        source=(
            "AWS SDK for pandas 3.17.0. aws/aws-sdk-pandas issue #3331 measured 204 MiB unzipped for"
            " 3.16.1 (167 MiB for 3.16.0, growth from the Arrow upgrade); no published figure for"
            " 3.17.0 was found, so 210 MiB is an assumed bound (3.16.1 + 3%). Re-check on upgrade with"
            " `aws lambda get-layer-version-by-arn` and the unzipped Content.Location."
        ),
    ),
    PublishedLayer(
        arn_contains=":layer:AWSLambdaPowertoolsPythonV3-python312-arm64:",
        unzipped_bytes=32 * MIB,
        source=(
            "Powertools for AWS Lambda (Python) v3 layer (all extras, no boto3). Not published;"
            " measured here: `pip install --platform manylinux2014_aarch64 --python-version 3.12"
            " aws-lambda-powertools[all]==3.37.0` minus boto3/botocore/s3transfer/jmespath and"
            " __pycache__ = 30.7 MB (29.3 MiB); 32 MiB bound. The published layer is built"
            " the same way and optimized further, so it is smaller."
        ),
    ),
)


def published_layer_bytes(arn: str) -> int:
    for layer in PUBLISHED_LAYERS:
        if layer.arn_contains in arn:
            return layer.unzipped_bytes
    raise KeyError(f"no recorded unzipped size for layer {arn}: add it to stacks/packaging.py")
