"""Lambda layers shared by the functions: our core package, the kaggle deps, and two public layers."""

from __future__ import annotations

from aws_cdk import Annotations
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks import iceberg_layer
from stacks.context import StackSettings
from stacks.kaggle_layer import PLACEHOLDER_DESCRIPTION, PLACEHOLDER_DIR, build_dir, is_built
from stacks.packaging import CORE_LAYER_DIR, CORE_LAYER_EXCLUDES

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64


class KaggleLayerNotBuiltError(RuntimeError):
    pass


class SharedLayers(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)

        # layers/core/python/snapcdc: the Lambda layer layout of the package both functions import.
        self.core = lambda_.LayerVersion(
            self,
            "CoreLayer",
            code=lambda_.Code.from_asset(str(CORE_LAYER_DIR), exclude=list(CORE_LAYER_EXCLUDES)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="snapcdc core package (config, layout, CDC engine, S3 store)",
        )

        if settings.build_layers:
            kaggle_dir = build_dir()
            if not is_built(kaggle_dir):
                raise KaggleLayerNotBuiltError(
                    f"context key 'build_layers' is true but the kaggle layer is not built at {kaggle_dir};"
                    " run `make layers` first"
                )
            description = f"kaggle client and its dependencies ({kaggle_dir.name})"
        else:
            kaggle_dir = PLACEHOLDER_DIR
            description = PLACEHOLDER_DESCRIPTION
            Annotations.of(self).add_info(
                "kaggle layer is a placeholder (context build_layers=false); deploy with `make deploy`"
            )
        self.kaggle = lambda_.LayerVersion(
            self,
            "KaggleLayer",
            code=lambda_.Code.from_asset(str(kaggle_dir), exclude=[".complete"]),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=description,
        )

        # pyiceberg for the CDC function's Iceberg tables (docs/iceberg.md), built like the kaggle layer.
        iceberg_dir = iceberg_layer.build_dir() if settings.build_layers else iceberg_layer.PLACEHOLDER_DIR
        if settings.build_layers and not iceberg_layer.is_built(iceberg_dir):
            raise KaggleLayerNotBuiltError(f"the iceberg layer is not built at {iceberg_dir}; run `make layers` first")
        self.iceberg = lambda_.LayerVersion(
            self,
            "IcebergLayer",
            code=lambda_.Code.from_asset(str(iceberg_dir), exclude=[".complete"]),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=(
                f"pyiceberg and its dependencies ({iceberg_dir.name})"
                if settings.build_layers
                else iceberg_layer.PLACEHOLDER_DESCRIPTION
            ),
        )

        self.powertools = lambda_.LayerVersion.from_layer_version_arn(
            self, "PowertoolsLayer", settings.powertools_layer_arn
        )
        self.aws_sdk_pandas = lambda_.LayerVersion.from_layer_version_arn(
            self, "AwsSdkPandasLayer", settings.aws_sdk_pandas_layer_arn
        )
