"""``mms`` against a real service process: commands, table and JSON output, exit codes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minio_manager_cli import client
from minio_manager_cli.app import main
from tests.support.kbase import KBase, TestUser
from tests.support.processes import REPO, free_port, service_process
from tests.support.store import open_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service_url(
    app: object, service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log = tmp_path_factory.mktemp("cli") / "service.log"
    with service_process({**service_env, "LOG_LEVEL": "INFO"}, log) as url:
        yield url


class Mms:
    """Runs ``mms`` in-process as ``who`` and keeps what it printed."""

    def __init__(self, url: str, who: TestUser, monkeypatch: pytest.MonkeyPatch) -> None:
        self.url, self.who, self.monkeypatch = url, who, monkeypatch

    def __call__(self, *argv: str, token: str | None = None) -> tuple[int, str]:
        self.monkeypatch.setenv("MMS_URL", self.url)
        self.monkeypatch.setenv("MMS_TOKEN", self.who.token if token is None else token)
        out = io.StringIO()
        code = main(list(argv), out=out)
        return code, out.getvalue()

    def json(self, *argv: str) -> Any:
        code, out = self(*argv, "--json")
        assert code == client.OK, out
        return json.loads(out)


@pytest.fixture
def mms(service_url: str, admin: TestUser, monkeypatch: pytest.MonkeyPatch) -> Mms:
    return Mms(service_url, admin, monkeypatch)


def name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def test_users_list_shows_unmanaged_store_users_only_when_asked(mms: Mms) -> None:
    foreign = name("svc")

    async def in_store(create: bool) -> None:
        store = open_store()
        try:
            if create:
                await store.set_user(foreign, uuid.uuid4().hex)
            else:
                await store.delete_user(foreign)
        finally:
            await store.close()

    asyncio.run(in_store(create=True))
    try:
        plain = {u["username"] for u in mms.json("users", "list")}
        asked = mms.json("users", "list", "--include-unmanaged", "--page-size", "500")
    finally:
        asyncio.run(in_store(create=False))
    assert foreign not in plain
    assert foreign in {u["username"] for u in asked}


def test_users_create_list_rotate_delete(mms: Mms, capsys: pytest.CaptureFixture[str]) -> None:
    user = name("u")
    code, out = mms("users", "create", user)
    assert code == client.OK
    assert user in out and "secret key issued; not shown" in out
    created = mms.json("users", "rotate", user)
    assert created["username"] == user and created["secret_key"]
    assert created["secret_key"] not in out

    listed = mms.json("users", "list", "--page-size", "2")  # pages through every user
    assert user in {u["username"] for u in listed}
    code, out = mms("users", "list")
    assert out.splitlines()[0].split()[:2] == ["USERNAME", "ACCESS_KEY"]

    assert mms("users", "delete", user)[0] == client.USAGE  # no --yes
    assert mms("users", "delete", user, "--yes")[0] == client.OK
    code, _ = mms("users", "rotate", user)
    assert code == client.NOT_FOUND
    assert "not found" in capsys.readouterr().err.lower()


def test_rotate_all_and_regenerate_and_drift(mms: Mms) -> None:
    rotated = mms.json("users", "rotate", "--all")
    assert rotated["failed_count"] == 0
    regenerated = mms.json("regenerate")
    assert regenerated["errors"] == []
    code, out = mms("drift")
    assert code == client.OK and out.startswith("checked ")


def test_groups_and_tenants(mms: Mms, kbase: KBase) -> None:
    member = kbase.add_user()
    assert mms("users", "create", member.name)[0] == client.OK
    group = name("g")
    assert mms("groups", "create", group)[0] == client.OK
    assert mms.json("groups", "add-member", group, member.name)["members"] == [member.name]
    groups = {g["group_name"]: g for g in mms.json("groups", "list")}
    assert groups[group]["members"] == [member.name]
    assert mms("groups", "remove-member", group, member.name)[0] == client.OK

    tenant = group  # a tenant is the metadata of an existing group (created with it)
    assert mms.json("tenants", "create", tenant)["tenant_name"] == tenant
    assert mms.json("tenants", "update", tenant, "--display-name", "Team T")["display_name"] == (
        "Team T"
    )
    added = mms.json("tenants", "add-member", tenant, member.name, "--permission", "read_only")
    assert added["access_level"] == "read_only"
    assert tenant in {t["tenant_name"] for t in mms.json("tenants", "list")}
    code, out = mms("tenants", "show", tenant)
    assert code == client.OK and "Team T" in out
    assert mms("tenants", "remove-member", tenant, member.name)[0] == client.OK
    assert mms("tenants", "delete", tenant, "--yes")[0] == client.OK
    assert mms("groups", "delete", group, "--yes")[0] == client.OK
    assert mms("tenants", "show", tenant)[0] == client.NOT_FOUND


def test_shares_grant_show_revoke_and_audit_tail(
    service_url: str, kbase: KBase, admin: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, reader = kbase.add_user(), kbase.add_user()
    as_owner = Mms(service_url, owner, monkeypatch)
    as_reader = Mms(service_url, reader, monkeypatch)
    as_reader("tenants", "list")  # the reader exists once they have called the service
    as_owner.json("shares", "show", f"s3a://cdm-lake/users-general-warehouse/{owner.name}/")
    # Provision both (first call of /credentials/ creates the user in the object store).
    Mms(service_url, admin, monkeypatch)("users", "create", reader.name)
    path = f"s3a://cdm-lake/users-general-warehouse/{owner.name}/data/shared/"
    granted = as_owner.json("shares", "grant", path, "--user", reader.name)
    assert granted["shared_with_users"] == [reader.name]
    assert reader.name in as_owner.json("shares", "show", path)["users"]
    code, _ = as_owner("shares", "grant", path, "--user", name("ghost"))
    assert code == client.CONFLICT  # partial success (207): the unknown user is an error
    assert as_owner("shares", "revoke", path, "--user", reader.name)[0] == client.OK

    entries = Mms(service_url, admin, monkeypatch).json(
        "audit", "tail", "-n", "5", "--actor", admin.name
    )
    assert entries and entries[-1]["actor"] == admin.name
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)  # oldest first


def test_exit_codes(
    mms: Mms, service_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMS_TOKEN", raising=False)
    monkeypatch.setenv("MMS_URL", service_url)
    assert main(["users", "list"], out=io.StringIO()) == client.USAGE  # no token
    token_file = tmp_path / "token"
    token_file.write_text(mms.who.token + "\n")
    assert main(["users", "list", "--token-file", str(token_file)], out=io.StringIO()) == client.OK
    assert mms("users", "list", token="not-a-real-token")[0] == client.AUTH
    unreachable = f"http://127.0.0.1:{free_port()}"
    assert mms("users", "list", "--url", unreachable)[0] == client.UNAVAILABLE
    with pytest.raises(SystemExit) as usage:
        main(["users", "frobnicate"])
    assert usage.value.code == client.USAGE


def test_console_script_runs_without_the_server_package(tmp_path: Path) -> None:
    """``mms`` is installed as a console script and imports nothing of the service."""
    code = (
        "import sys, minio_manager_cli.app as a; "
        "sys.argv=['mms','--help']; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'minio_manager']; "
        "a.main()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "exit codes" in result.stdout
