"""The KBase client against the protocol stand-in: caching rules and error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from minio_manager.auth.kbase import KBaseAuthClient
from minio_manager.errors import AuthServiceUnavailable, InvalidToken
from tests.support.kbase import KBase


@pytest.fixture(scope="module")
def stub() -> Iterator[KBase]:
    kbase = KBase()
    yield kbase
    kbase.close()


@pytest_asyncio.fixture
async def client(stub: KBase) -> AsyncIterator[KBaseAuthClient]:
    auth = KBaseAuthClient(stub.url, timeout_seconds=2)
    yield auth
    await auth.close()


async def test_user_roles_and_profile(stub: KBase, client: KBaseAuthClient) -> None:
    alice = stub.add_user(admin=True, email="a@x.org", display="Alice")
    user = await client.user_for_token(alice.token)
    assert user.username == alice.name
    assert user.custom_roles == {"BERDL_USER", "KBASE_ADMIN"}
    assert (user.email, user.display_name) == ("a@x.org", "Alice")


async def test_cache_bounded_by_token_expiry(stub: KBase, client: KBaseAuthClient) -> None:
    short = stub.add_user(expires_in_ms=1500, cachefor_ms=300_000)
    await client.user_for_token(short.token)
    await client.user_for_token(short.token)
    assert client.lookups == 1
    await asyncio.sleep(1.7)
    with pytest.raises(InvalidToken):
        await client.user_for_token(short.token)
    assert client.lookups == 2


async def test_cache_bounded_by_cachefor(stub: KBase, client: KBaseAuthClient) -> None:
    brief = stub.add_user(cachefor_ms=300)
    await client.user_for_token(brief.token)
    await asyncio.sleep(0.4)
    await client.user_for_token(brief.token)
    assert client.lookups == 2


async def test_concurrent_misses_share_one_lookup(stub: KBase, client: KBaseAuthClient) -> None:
    bob = stub.add_user()
    before = stub.stats()["me"]
    users = await asyncio.gather(*(client.user_for_token(bob.token) for _ in range(20)))
    assert {u.username for u in users} == {bob.name}
    assert stub.stats()["me"] - before == 1


async def test_failures_are_not_cached(stub: KBase, client: KBaseAuthClient) -> None:
    carol = stub.add_user()
    stub.mode("error500")
    try:
        with pytest.raises(AuthServiceUnavailable):
            await client.user_for_token(carol.token)
    finally:
        stub.mode("normal")
    assert (await client.user_for_token(carol.token)).username == carol.name


async def test_bearer_prefixed_token_is_invalid(stub: KBase, client: KBaseAuthClient) -> None:
    dave = stub.add_user()
    with pytest.raises(InvalidToken):
        await client.user_for_token(f"Bearer {dave.token}")


async def test_slow_auth_times_out_as_unavailable(stub: KBase) -> None:
    erin = stub.add_user()
    auth = KBaseAuthClient(stub.url, timeout_seconds=0.3)
    stub.mode("slow", delay_s=1.0)
    try:
        with pytest.raises(AuthServiceUnavailable):
            await auth.user_for_token(erin.token)
    finally:
        stub.mode("normal")
        await auth.close()


async def test_display_names(stub: KBase, client: KBaseAuthClient) -> None:
    frank = stub.add_user(display="Frank F")
    names = await client.display_names(frank.token, [frank.name, "no-such-user-xyz"])
    assert names == {frank.name: "Frank F", "no-such-user-xyz": None}


async def test_service_check(stub: KBase, client: KBaseAuthClient) -> None:
    await client.check_service()
