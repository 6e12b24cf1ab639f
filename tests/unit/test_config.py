"""Settings: a missing required variable stops start-up with a message naming it."""

from __future__ import annotations

import pytest

from minio_manager.config import LEGACY_NAMES, ConfigurationError, Settings, load_settings

REQUIRED = {
    "MINIO_ENDPOINT": "http://127.0.0.1:9002",
    "MINIO_ROOT_USER": "root",
    "MINIO_ROOT_PASSWORD": "very-secret-root-password",
    "REDIS_URL": "redis://127.0.0.1:6380/0",
    "MMS_DB_HOST": "127.0.0.1",
    "MMS_DB_NAME": "mms",
    "MMS_DB_USER": "mms",
    "MMS_DB_PASSWORD": "very-secret-db-password",
    "MMS_DB_ENCRYPTION_KEY": "very-secret-encryption-key",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> pytest.MonkeyPatch:
    monkeypatch.chdir(str(tmp_path))  # no stray .env
    # integration fixtures (and `stack.sh env`) may have set any of them
    for name in [*Settings.model_fields, *LEGACY_NAMES.values()]:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_missing_required_variable_is_named(env: pytest.MonkeyPatch, missing: str) -> None:
    env.delenv(missing)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert missing in str(caught.value)
    for secret in ("very-secret-root-password", "very-secret-db-password"):
        assert secret not in str(caught.value)


def test_defaults_and_lists(env: pytest.MonkeyPatch) -> None:
    env.setenv("KBASE_ADMIN_ROLES", " KBASE_ADMIN , CDM_ADMIN ,")
    settings = load_settings()
    assert settings.kbase_admin_roles == ("KBASE_ADMIN", "CDM_ADMIN")
    assert settings.kbase_required_roles == ("BERDL_USER",)
    assert settings.mms_db_port == 5432
    assert settings.kbase_auth_url == "https://ci.kbase.us/services/auth/"
    assert settings.layout.bucket == "cdm-lake"
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in settings.database_dsn


def test_invalid_value_is_named(env: pytest.MonkeyPatch) -> None:
    env.setenv("MMS_DB_PORT", "not-a-port")
    with pytest.raises(ConfigurationError, match="MMS_DB_PORT"):
        load_settings()


def test_object_store_names_generic_and_legacy(env: pytest.MonkeyPatch) -> None:
    """The reference's MINIO_* names keep working; the generic ones win when both are set."""
    settings = load_settings()
    assert settings.object_store == "minio"
    assert settings.object_store_endpoint == "http://127.0.0.1:9002"
    assert settings.object_store_access_key == "root"
    assert settings.object_store_secret_key.get_secret_value() == "very-secret-root-password"
    env.setenv("OBJECT_STORE", "aws-iam")
    env.setenv("OBJECT_STORE_ENDPOINT", "http://127.0.0.1:8333")
    env.setenv("OBJECT_STORE_ACCESS_KEY", "admin")
    env.setenv("OBJECT_STORE_SECRET_KEY", "very-secret-admin-key")
    settings = load_settings()
    assert settings.object_store == "aws-iam"
    assert settings.object_store_endpoint == "http://127.0.0.1:8333"
    assert settings.object_store_access_key == "admin"
    assert "very-secret" not in repr(settings)


def test_missing_store_variable_names_both_spellings(env: pytest.MonkeyPatch) -> None:
    env.delenv("MINIO_ENDPOINT")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "OBJECT_STORE_ENDPOINT (or MINIO_ENDPOINT)" in str(caught.value)


def test_unknown_object_store_kind_is_named(env: pytest.MonkeyPatch) -> None:
    env.setenv("OBJECT_STORE", "ceph-admin")
    with pytest.raises(ConfigurationError, match="OBJECT_STORE"):
        load_settings()


def test_group_lock_settings_accept_their_old_policy_lock_names(env: pytest.MonkeyPatch) -> None:
    env.setenv("POLICY_LOCK_WAIT_SECONDS", "7")
    env.setenv("POLICY_LOCK_EXPIRY_SECONDS", "70")
    settings = load_settings()
    assert (settings.group_lock_wait_seconds, settings.group_lock_expiry_seconds) == (7, 70)
    env.setenv("GROUP_LOCK_WAIT_SECONDS", "3")
    assert load_settings().group_lock_wait_seconds == 3
