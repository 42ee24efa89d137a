"""Schema conversion between Spark and delta-rs, and Delta column mapping (name mode)."""

from __future__ import annotations

import json
from typing import Any

from deltalake import DeltaTable
from deltalake.schema import Field as DeltaField
from deltalake.schema import Schema as DeltaSchema
from pyspark.sql.types import ArrayType, DataType, MapType, StructField, StructType


def to_delta_schema(schema: StructType) -> DeltaSchema:
    """A Spark schema as delta-rs takes it (through Delta's JSON form)."""
    return DeltaSchema.from_json(schema.json())


def to_delta_field(field: Any) -> DeltaField:
    """One Spark field as delta-rs takes it, for a column added by schema evolution."""
    return DeltaField.from_json(json.dumps(field.jsonValue()))


def spark_schema(table: DeltaTable) -> StructType:
    """The Spark schema of ``table``'s loaded version, with Delta's field metadata."""
    return StructType.fromJson(json.loads(table.schema().to_json()))


def column_mapping_mode(table: DeltaTable) -> str:
    """The table's ``delta.columnMapping.mode`` ("none", "name" or "id")."""
    return (table.metadata().configuration or {}).get("delta.columnMapping.mode") or "none"


def _physical_name(field: StructField) -> str:
    return str(field.metadata.get("delta.columnMapping.physicalName") or field.name)


def _rename_type(data_type: DataType, physical: bool) -> DataType:
    if isinstance(data_type, StructType):
        return StructType(
            [
                StructField(
                    _physical_name(f) if physical else f.name,
                    _rename_type(f.dataType, physical),
                    f.nullable,
                    {} if physical else f.metadata,
                )
                for f in data_type.fields
            ]
        )
    if isinstance(data_type, ArrayType):
        return ArrayType(_rename_type(data_type.elementType, physical), data_type.containsNull)
    if isinstance(data_type, MapType):
        return MapType(
            _rename_type(data_type.keyType, physical),
            _rename_type(data_type.valueType, physical),
            data_type.valueContainsNull,
        )
    return data_type


def physical_schema(schema: StructType) -> StructType:
    """The schema as the Parquet files spell it under column mapping (same order and types)."""
    renamed = _rename_type(schema, physical=True)
    assert isinstance(renamed, StructType)
    return renamed


def logical_schema(schema: StructType) -> StructType:
    """The table's schema without the mapping metadata (what callers see)."""
    return StructType(
        [
            StructField(f.name, _strip_mapping(f.dataType), f.nullable, _clean_metadata(f.metadata))
            for f in schema.fields
        ]
    )


def _strip_mapping(data_type: DataType) -> DataType:
    if isinstance(data_type, StructType):
        return logical_schema(data_type)
    if isinstance(data_type, ArrayType):
        return ArrayType(_strip_mapping(data_type.elementType), data_type.containsNull)
    if isinstance(data_type, MapType):
        return MapType(
            _strip_mapping(data_type.keyType),
            _strip_mapping(data_type.valueType),
            data_type.valueContainsNull,
        )
    return data_type


def _clean_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if not k.startswith("delta.columnMapping.")}
