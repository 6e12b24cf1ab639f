"""The rendered ``GET /tenants`` body equals pydantic's own serialisation, call after call."""

from __future__ import annotations

from pydantic import TypeAdapter

from minio_manager.objectstore.port import StoreGroup
from minio_manager.tenants.listing import ListingRenderer
from minio_manager.tenants.schemas import TenantSummary
from minio_manager.tenants.store import ListingRow

SUMMARIES = TypeAdapter(list[TenantSummary])


def expected(
    names: list[str], groups: dict[str, StoreGroup | None], meta: dict[str, ListingRow], user: str
) -> bytes:
    summaries = []
    for name in names:
        members: set[str] = set()
        for group in (groups.get(name), groups.get(name + "ro")):
            if group is not None:
                members.update(group.members)
        row = meta.get(name)
        summaries.append(
            TenantSummary(
                tenant_name=name,
                display_name=row.display_name if row else None,
                description=row.description if row else None,
                website=row.website if row else None,
                organization=row.organization if row else None,
                member_count=len(members),
                is_member=user in members,
                is_steward=row.stewarded if row else False,
            )
        )
    return SUMMARIES.dump_json(summaries)


def test_rendered_listing_matches_pydantic_and_follows_changes() -> None:
    groups: dict[str, StoreGroup | None] = {
        "alpha": StoreGroup("alpha", ("ann", "bob")),
        "alpharo": StoreGroup("alpharo", ("cat",)),
        "beta": StoreGroup("beta", ()),
        "gamma": None,  # deleted between the list and the read
    }
    meta = {
        "alpha": ListingRow('Al "pha" é\n', "d\\esc", "https://a.example", None, False),
        "beta": ListingRow(None, None, None, "Org", False),
    }
    names = ["alpha", "beta", "gamma"]
    renderer = ListingRenderer()
    for user in ("ann", "cat", "zed"):
        assert renderer.render(names, groups, meta, user) == expected(names, groups, meta, user)

    # The caller's stewardship, a new member (a new group object) and edited metadata show.
    meta["beta"] = ListingRow("Beta", None, None, "Org", True)
    groups["beta"] = StoreGroup("beta", ("zed",))
    assert renderer.render(names, groups, meta, "zed") == expected(names, groups, meta, "zed")
    meta["beta"] = ListingRow("Beta", None, None, "Org", False)
    assert renderer.render(names, groups, meta, "ann") == expected(names, groups, meta, "ann")

    # A tenant that disappears is dropped; one that comes back is rendered afresh.
    assert renderer.render(["beta"], groups, meta, "zed") == expected(["beta"], groups, meta, "zed")
    assert renderer.render(names, groups, meta, "cat") == expected(names, groups, meta, "cat")


def test_kept_listing_is_the_rendered_one_for_every_caller_until_something_moves() -> None:
    groups: dict[str, StoreGroup | None] = {
        "alpha": StoreGroup("alpha", ("ann", "bob")),
        "alpharo": StoreGroup("alpharo", ("cat",)),
        "beta": StoreGroup("beta", ("ann",)),
        "gamma": StoreGroup("gamma", ()),
    }
    names = ["alpha", "beta", "gamma"]
    stewards = {"bob": {"beta"}, "cat": {"alpha", "gamma"}, "ann": set[str](), "zed": {"beta"}}

    def meta_for(user: str) -> dict[str, ListingRow]:
        return {n: ListingRow(n.title(), None, None, None, n in stewards[user]) for n in names}

    renderer = ListingRenderer()
    snapshot = renderer.build(names, groups, meta_for("ann"))
    always = lambda _fetched_at: True  # noqa: E731
    renderer.keep(snapshot, "fp1", 7, 0.0)
    for user in stewards:
        reused = renderer.reuse("fp1", 7, always, user, stewards[user] | {"unknown"})
        assert reused == expected(names, groups, meta_for(user), user)
        assert reused == ListingRenderer().render(names, groups, meta_for(user), user)

    # Anything it was built from moved, or its entries are due for a refresh: rebuild.
    assert renderer.reuse("fp2", 7, always, "ann", set()) is None
    assert renderer.reuse("fp1", 8, always, "ann", set()) is None
    assert renderer.reuse("fp1", 7, lambda _fetched_at: False, "ann", set()) is None
