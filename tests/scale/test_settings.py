"""The scale-out settings: storage URLs, database URLs, secrets hidden, passed on to workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyfiledrop.config import ConfigError, S3Location, describe_settings, load_settings
from pyfiledrop.server import _settings_as_json


def test_s3_storage_and_database_are_parsed(tmp_path: Path) -> None:
    loaded = load_settings(
        {"storage": "s3://my-bucket/some/prefix/", "database": "postgresql://u:pw@db/x"},
        environ={"PYFILEDROP_S3_SECRET_KEY": "hush", "PYFILEDROP_S3_ENDPOINT": "http://m:9000/"},
        cwd=tmp_path,
    )
    settings = loaded.settings
    assert settings.storage == S3Location("my-bucket", "some/prefix")
    assert settings.s3_endpoint == "http://m:9000"
    shown = {name: value for name, value, _ in describe_settings(settings, loaded.sources)}
    assert shown["storage"] == "s3://my-bucket/some/prefix"
    assert shown["database"] == "postgresql://u:***@db/x"
    assert "hush" not in json.dumps(shown)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"storage": "s3://Bad_Bucket/x"}, "--storage"),
        ({"storage": "s3://bucket/../x"}, "--storage"),
        ({"database": "mysql://db/x"}, "--database"),
        ({"s3_endpoint": "minio:9000"}, "--s3-endpoint"),
    ],
)
def test_bad_values_name_their_setting(tmp_path: Path, flags: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(flags, environ={}, cwd=tmp_path)


def test_settings_reach_worker_processes_unchanged(tmp_path: Path) -> None:
    settings = load_settings(
        {"storage": "s3://bkt/p", "database": "postgresql://db/x", "s3_presign": True,
         "chunk_size": "8MiB", "workers": "3"},
        environ={}, cwd=tmp_path,
    ).settings  # fmt: skip
    values = json.loads(json.dumps(_settings_as_json(settings)))
    flags = {name: value for name, value in values.items() if value is not None}
    assert load_settings(flags, environ={}, cwd=tmp_path).settings == settings
