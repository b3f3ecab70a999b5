"""Pipeline configuration: which Kaggle dataset, and how each of its tables is read and diffed.

Pure (pydantic only). Errors name the offending field, e.g. ``tables[2].primary_key``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from snapcdc.errors import PermanentError

ColumnType = Literal["string", "int64", "float64", "bool", "timestamp", "date"]
TABLE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class ConfigError(PermanentError, ValueError):
    """The pipeline config is invalid; the message names the field. Permanent: a retry reads the same config."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scd2Config(_Strict):
    """SCD type 2 history of the table (``scd2/<table>/``)."""

    # None: every column is tracked (any change opens a new version). A list: only changes to these
    # columns open a new version; a change elsewhere updates the current version in place.
    track_history_columns: tuple[str, ...] | None = Field(default=None, min_length=1)


class OutputsConfig(_Strict):
    """Change feeds beyond ``cdc/`` (docs/design.md, "Change feeds"); none by default."""

    changelog: bool = False  # changelog/<table>/: Spark changelog rows with update pre-images
    scd2: Scd2Config | None = None  # scd2/<table>/: versions with valid_from / valid_to / is_current
    dms: bool = False  # dms/<table>/: the AWS DMS S3 target layout (Op first, LOAD00000001.parquet)

    @field_validator("scd2", mode="before")
    @classmethod
    def _scd2_flag(cls, value: object) -> object:
        """``"scd2": true`` is every column tracked; ``false`` is off."""
        if value is True:
            return {}
        if value is False:
            return None
        return value

    @property
    def enabled(self) -> list[str]:
        return [name for name, on in (("changelog", self.changelog), ("scd2", self.scd2), ("dms", self.dms)) if on]


class IcebergConfig(_Strict):
    """The pipeline-wide Iceberg defaults (docs/iceberg.md); a table's ``iceberg`` overrides ``enabled``."""

    enabled: bool = False  # <table> and <table>_changes in the Glue catalog, kept by the CDC stage
    retention_days: int = Field(default=3650, ge=1)  # every source snapshot stays queryable this long


class TableConfig(_Strict):
    name: str = Field(pattern=TABLE_NAME_PATTERN)
    file: str = Field(min_length=1, description="CSV file name inside the Kaggle dataset")
    delimiter: str | None = Field(default=None, description="None: detect ',' or ';' from the header")
    primary_key: tuple[str, ...] = Field(min_length=1)
    date_field: str | None = None
    column_types: dict[str, ColumnType] = Field(default_factory=dict)
    max_delete_ratio: float = Field(default=0.5, ge=0.0, le=1.0)
    allow_mass_delete: bool = False
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    iceberg: bool | None = None  # None: the pipeline's iceberg.enabled

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError("must be a single character")
        return value

    @field_validator("file")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in {".", ".."}:
            raise ValueError("must be a plain file name, without folders")
        return value

    @model_validator(mode="after")
    def _columns_consistent(self) -> TableConfig:
        if len(set(self.primary_key)) != len(self.primary_key):
            raise ValueError("primary_key lists a column twice")
        if self.date_field is not None and self.date_field in self.primary_key:
            raise ValueError("date_field cannot be part of the primary_key")
        tracked = self.outputs.scd2.track_history_columns if self.outputs.scd2 is not None else None
        if tracked is not None:
            if len(set(tracked)) != len(tracked):
                raise ValueError("outputs.scd2.track_history_columns lists a column twice")
            if set(tracked) & set(self.primary_key):
                raise ValueError("outputs.scd2.track_history_columns cannot name a primary_key column")
        return self


class PipelineConfig(_Strict):
    dataset: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/slug on Kaggle")
    tables: tuple[TableConfig, ...] = Field(min_length=1)
    # Limits for the untrusted Kaggle zip, "at most N bytes" (N + 1 is refused). The extract streams the
    # archive through S3, not the function's /tmp (512 MB by default), so /tmp does not cap the total; only
    # the disk path (safe_zip.extract_members) also caps it by the free space of its work dir.
    max_member_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_total_bytes: int = Field(default=4 * 1024**3, gt=0)
    max_compression_ratio: float = Field(default=200.0, gt=1.0)
    iceberg: IcebergConfig = Field(default_factory=IcebergConfig)

    @field_validator("iceberg", mode="before")
    @classmethod
    def _iceberg_flag(cls, value: object) -> object:
        """``"iceberg": true`` turns it on for every table (default settings); ``false`` off."""
        return {"enabled": value} if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _iceberg_default(self) -> PipelineConfig:
        """A table that does not say ``iceberg`` takes the pipeline's default."""
        tables = tuple(
            t if t.iceberg is not None else t.model_copy(update={"iceberg": self.iceberg.enabled}) for t in self.tables
        )
        object.__setattr__(self, "tables", tables)
        return self

    @model_validator(mode="after")
    def _unique_tables(self) -> PipelineConfig:
        for attr in ("name", "file"):
            values = [getattr(t, attr) for t in self.tables]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"table {attr} used twice: {', '.join(dupes)}")
        return self

    def table(self, name: str) -> TableConfig:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"table {name!r} is not in the pipeline config (known: {self.table_names})")

    @property
    def table_names(self) -> list[str]:
        return [t.name for t in self.tables]


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
        lines.append(f"{source}: {where or '<root>'}: {item['msg']}")
    return "invalid pipeline config\n" + "\n".join(lines)


def parse_config(data: object, source: str = "<config>") -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Load a config file; ``None`` loads the packaged default (the real loyalty dataset)."""
    if path is None:
        text = resources.files("snapcdc").joinpath("pipeline.json").read_text(encoding="utf-8")
        source = "snapcdc/pipeline.json"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"cannot read pipeline config {path}: {error.strerror}") from None
        source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source}: line {error.lineno}: not valid JSON: {error.msg}") from None
    return parse_config(data, source)
