"""``mms`` commands: each one is one or a few calls to the HTTP API, shown as a table or JSON.

The token comes from ``MMS_TOKEN`` or ``--token-file`` and the service from ``MMS_URL`` (or
``--url``). Table output never shows an issued secret key; ``--json`` returns the API's answer
as is, for scripts that need it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO
from urllib.parse import quote

from minio_manager_cli import client
from minio_manager_cli.client import Api, CliError
from minio_manager_cli.output import dump_json, fields, spinner, table

EPILOG = """\
environment:
  MMS_URL     base URL of the service (default http://127.0.0.1:8000)
  MMS_TOKEN   KBase token (or --token-file PATH)

exit codes:
  0 ok  1 usage  2 auth (401/403)  3 not found  4 conflict/validation/partial
  5 service unavailable  6 other failure
"""

Handler = Callable[[Api, argparse.Namespace, TextIO], Any]


class Parser(argparse.ArgumentParser):
    """argparse exits with 2 on a usage error; ``mms`` reserves 2 for auth, so use 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(client.USAGE, f"{self.prog}: error: {message}\n")


def _seg(value: str) -> str:
    """A path segment, escaped so a name can never reach another route."""
    return quote(value, safe="")


def _confirm(args: argparse.Namespace, what: str) -> None:
    if not args.yes:
        raise CliError(f"{what} deletes data; add --yes to confirm", client.USAGE)


# -- users ------------------------------------------------------------------------------------
USER_COLUMNS = ("username", "access_key", "groups", "total_policies")
ISSUED_COLUMNS = ("username", "access_key", "operation", "performed_by", "timestamp")


def users_list(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    users: list[dict[str, Any]] = []
    page = 1
    while True:
        body = api.call(
            "GET",
            "/management/users",
            params={
                "page": page,
                "page_size": args.page_size,
                **({"include_unmanaged": "true"} if args.include_unmanaged else {}),
            },
        )
        users.extend(body["users"])
        if not body["has_next"]:
            break
        page += 1
    if args.json:
        return users
    table(users, USER_COLUMNS, out)
    return None


def _issued(body: dict[str, Any], args: argparse.Namespace, out: TextIO) -> Any:
    if args.json:
        return body
    fields(body, ISSUED_COLUMNS, out)
    out.write("secret key issued; not shown (use --json to receive it)\n")
    return None


def users_create(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    return _issued(api.call("POST", f"/management/users/{_seg(args.username)}"), args, out)


def users_delete(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    _confirm(args, f"deleting user {args.username}")
    body = api.call("DELETE", f"/management/users/{_seg(args.username)}")
    if args.json:
        return body
    out.write(f"{body['message']}\n")
    return None


def users_rotate(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    if args.all == bool(args.username):
        raise CliError("give a username or --all (not both)", client.USAGE)
    if args.username:
        path = f"/management/users/{_seg(args.username)}/rotate-credentials"
        return _issued(api.call("POST", path), args, out)
    with spinner("rotating every credential"):
        body = api.call("POST", "/management/credentials/rotate-all-credentials")
    if body["failed_count"]:
        table(body["failures"], ("username", "error"), sys.stderr)
    if args.json:
        return body
    out.write(f"rotated {body['rotated_count']} of {body['total_count']}, ")
    out.write(f"{body['failed_count']} failed\n")
    if body["failed_count"]:
        raise CliError("some credentials were not rotated", client.CONFLICT)
    return None


# -- groups -----------------------------------------------------------------------------------
def groups_list(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    body = api.call("GET", "/management/groups")
    if args.json:
        return body["groups"]
    table(body["groups"], ("group_name", "member_count", "members"), out)
    return None


def _group_result(body: dict[str, Any], args: argparse.Namespace, out: TextIO) -> Any:
    if args.json:
        return body
    fields(body, ("group_name", "ro_group_name", "members", "operation", "performed_by"), out)
    return None


def groups_create(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    return _group_result(api.call("POST", f"/management/groups/{_seg(args.group)}"), args, out)


def groups_delete(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    _confirm(args, f"deleting group {args.group}")
    body = api.call("DELETE", f"/management/groups/{_seg(args.group)}")
    if args.json:
        return body
    out.write(f"{body['message']}\n")
    return None


def groups_add_member(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    path = f"/management/groups/{_seg(args.group)}/members/{_seg(args.username)}"
    return _group_result(api.call("POST", path), args, out)


def groups_remove_member(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    path = f"/management/groups/{_seg(args.group)}/members/{_seg(args.username)}"
    return _group_result(api.call("DELETE", path), args, out)


# -- tenants ----------------------------------------------------------------------------------
TENANT_FIELDS = ("display_name", "description", "organization", "website")


def tenants_list(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    body = api.call("GET", "/tenants")
    if args.json:
        return body
    table(body, ("tenant_name", "display_name", "member_count", "is_member", "is_steward"), out)
    return None


def tenants_show(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    body = api.call("GET", f"/tenants/{_seg(args.tenant)}")
    if args.json:
        return body
    metadata = body.get("metadata") or body
    fields(metadata, ("tenant_name", *TENANT_FIELDS, "created_by", "created_at"), out)
    for key in ("stewards", "members"):
        if isinstance(body.get(key), list):
            out.write(f"\n{key}:\n")
            table(body[key], ("username", "display_name", "access_level"), out)
    return None


def _metadata(args: argparse.Namespace) -> dict[str, str]:
    return {k: getattr(args, k) for k in TENANT_FIELDS if getattr(args, k) is not None}


def tenants_create(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    body = api.call("POST", f"/tenants/{_seg(args.tenant)}", json=_metadata(args) or None)
    if args.json:
        return body
    fields(body, ("tenant_name", *TENANT_FIELDS, "created_by"), out)
    return None


def tenants_update(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    body = api.call("PATCH", f"/tenants/{_seg(args.tenant)}", json=_metadata(args))
    if args.json:
        return body
    fields(body, ("tenant_name", *TENANT_FIELDS, "updated_by"), out)
    return None


def tenants_delete(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    _confirm(args, f"deleting tenant {args.tenant}")
    api.call("DELETE", f"/tenants/{_seg(args.tenant)}")
    if not args.json:
        out.write(f"tenant {args.tenant} deleted\n")
    return {"tenant_name": args.tenant, "deleted": True} if args.json else None


def tenants_members(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    body = api.call("GET", f"/tenants/{_seg(args.tenant)}/members")
    if args.json:
        return body
    table(body, ("username", "display_name", "access_level", "is_steward"), out)
    return None


def tenants_add_member(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    path = f"/tenants/{_seg(args.tenant)}/members/{_seg(args.username)}"
    body = api.call("POST", path, params={"permission": args.permission})
    if args.json:
        return body
    fields(body, ("username", "access_level", "is_steward"), out)
    return None


def tenants_remove_member(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    api.call("DELETE", f"/tenants/{_seg(args.tenant)}/members/{_seg(args.username)}")
    if not args.json:
        out.write(f"{args.username} removed from {args.tenant}\n")
    return {"tenant_name": args.tenant, "removed": args.username} if args.json else None


# -- shares -----------------------------------------------------------------------------------
def shares_grant(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    body = api.call(
        "POST",
        "/sharing/share",
        json={
            "path": args.path,
            "with_users": args.user,
            "with_groups": args.group,
            "permission": args.permission,
        },
        partial_ok=True,
    )
    return _share_result(body, "shared_with", args, out)


def shares_revoke(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    body = api.call(
        "POST",
        "/sharing/unshare",
        json={"path": args.path, "from_users": args.user, "from_groups": args.group},
        partial_ok=True,
    )
    return _share_result(body, "unshared_from", args, out)


def _share_result(body: dict[str, Any], prefix: str, args: argparse.Namespace, out: TextIO) -> Any:
    if not args.json:
        fields(body, ("path", f"{prefix}_users", f"{prefix}_groups", "success_count"), out)
    if body.get("errors"):
        for error in body["errors"]:
            sys.stderr.write(f"error: {error}\n")
        if args.json:
            dump_json(body, out)
        raise CliError("some targets failed", client.CONFLICT)
    return body if args.json else None


def shares_show(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    body = api.call("POST", "/sharing/get_path_access_info", json={"path": args.path})
    if args.json:
        return body
    fields(body, ("path", "users", "groups", "public"), out)
    return None


# -- audit, drift, regenerate -----------------------------------------------------------------
AUDIT_COLUMNS = ("id", "at", "actor", "action", "target", "request_id")


def audit_tail(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    filters = {k: getattr(args, k) for k in ("actor", "action", "target") if getattr(args, k)}
    body = api.call(
        "GET", "/management/audit", params={"page": 1, "page_size": args.lines, **filters}
    )
    entries = list(reversed(body["entries"]))  # oldest first, like tail
    if args.json and not args.follow:
        return entries
    _print_audit(entries, args, out, header=True)
    last = max((e["id"] for e in entries), default=0)
    while args.follow:
        time.sleep(args.interval)
        body = api.call("GET", "/management/audit", params={"page": 1, "page_size": 500, **filters})
        fresh = [e for e in reversed(body["entries"]) if e["id"] > last]
        _print_audit(fresh, args, out, header=False)
        last = max((e["id"] for e in fresh), default=last)
    return None


def _print_audit(
    entries: list[dict[str, Any]], args: argparse.Namespace, out: TextIO, *, header: bool
) -> None:
    if args.json:  # following: one compact JSON object per line, for `| jq` and log shippers
        for entry in entries:
            out.write(json.dumps(entry, default=str) + "\n")
    elif header or entries:
        if header:
            table(entries, AUDIT_COLUMNS, out)
        else:
            for entry in entries:
                out.write("  ".join(str(entry.get(c)) for c in AUDIT_COLUMNS) + "\n")
    out.flush()


def drift(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    with spinner("comparing stored policies with the records"):
        body = api.call("GET", "/management/migrate/policy-drift")
    if args.json:
        return body
    out.write(f"checked {body['principals_checked']}, drifted {body['drifted_count']}\n")
    if body["drifted"]:
        columns = [k for k in body["drifted"][0] if not isinstance(body["drifted"][0][k], dict)]
        table(body["drifted"], columns, out)
    return None


def regenerate(api: Api, args: argparse.Namespace, out: TextIO) -> Any:
    with spinner("re-rendering every policy"):
        body = api.call("POST", "/management/migrate/regenerate-policies")
    if args.json:
        return body
    out.write(
        f"users {body['users_updated']}/{body['users_total']} updated, "
        f"groups {body['groups_updated']}/{body['groups_total']} updated, "
        f"{len(body['errors'])} errors\n"
    )
    if body["errors"]:
        table(body["errors"], ("resource_type", "resource_name", "error"), sys.stderr)
        raise CliError("some principals were not regenerated", client.CONFLICT)
    return None


# -- the parser -------------------------------------------------------------------------------
def build_parser() -> Parser:
    def options(suppress: bool) -> Parser:
        # On subcommands the defaults are suppressed, so ``mms --json users list`` keeps the
        # value given before the subcommand (argparse would otherwise reset it).
        keep: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
        opts = Parser(add_help=False)
        opts.add_argument("--json", action="store_true", help="machine-readable output", **keep)
        opts.add_argument("--url", help="service URL (default: $MMS_URL)", **keep)
        opts.add_argument("--token-file", help="file holding the token", **keep)
        opts.add_argument("--timeout", type=float, help="seconds per request (600)", **keep)
        return opts

    common = options(suppress=True)

    parser = Parser(
        prog="mms",
        description="Administer the MinIO Manager Service through its HTTP API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[options(suppress=False)],
    )
    areas = parser.add_subparsers(dest="area", required=True, metavar="AREA")

    def command(
        group: argparse._SubParsersAction[Parser], name: str, handler: Handler, help_: str
    ) -> Parser:
        sub = group.add_parser(name, help=help_, description=help_, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    def area(name: str, help_: str) -> argparse._SubParsersAction[Parser]:
        sub = areas.add_parser(name, help=help_, description=help_)
        return sub.add_subparsers(dest="command", required=True, metavar="COMMAND")

    users = area("users", "object-store users and their credentials (admin)")
    sub = command(users, "list", users_list, "every user the service manages")
    sub.add_argument("--page-size", type=int, default=200)
    sub.add_argument(
        "--include-unmanaged",
        action="store_true",
        help="also store users the service does not manage (costs the store more)",
    )
    command(users, "create", users_create, "create or repair a user").add_argument("username")
    sub = command(users, "delete", users_delete, "delete a user and their data")
    sub.add_argument("username")
    sub.add_argument("--yes", action="store_true", help="confirm the deletion")
    sub = command(users, "rotate", users_rotate, "rotate one user's secret, or every one (--all)")
    sub.add_argument("username", nargs="?")
    sub.add_argument("--all", action="store_true")

    groups = area("groups", "groups and their members")
    command(groups, "list", groups_list, "every group with its members")
    command(groups, "create", groups_create, "create g and gro").add_argument("group")
    sub = command(groups, "delete", groups_delete, "delete a group and its data")
    sub.add_argument("group")
    sub.add_argument("--yes", action="store_true", help="confirm the deletion")
    for name, handler, text in (
        ("add-member", groups_add_member, "add a user to a group"),
        ("remove-member", groups_remove_member, "remove a user from a group"),
    ):
        sub = command(groups, name, handler, text)
        sub.add_argument("group")
        sub.add_argument("username")

    tenants = area("tenants", "tenants: metadata, members, stewards")
    command(tenants, "list", tenants_list, "every tenant")
    command(tenants, "show", tenants_show, "one tenant in detail").add_argument("tenant")
    for name, handler, text in (
        ("create", tenants_create, "create a tenant (admin)"),
        ("update", tenants_update, "change a tenant's metadata"),
    ):
        sub = command(tenants, name, handler, text)
        sub.add_argument("tenant")
        for key in TENANT_FIELDS:
            sub.add_argument(f"--{key.replace('_', '-')}", dest=key)
    sub = command(tenants, "delete", tenants_delete, "delete a tenant (admin)")
    sub.add_argument("tenant")
    sub.add_argument("--yes", action="store_true", help="confirm the deletion")
    command(tenants, "members", tenants_members, "a tenant's members").add_argument("tenant")
    sub = command(tenants, "add-member", tenants_add_member, "add a member")
    sub.add_argument("tenant")
    sub.add_argument("username")
    sub.add_argument("--permission", choices=("read_write", "read_only"), default="read_write")
    sub = command(tenants, "remove-member", tenants_remove_member, "remove a member")
    sub.add_argument("tenant")
    sub.add_argument("username")

    shares = area("shares", "share paths with users and groups")
    for name, handler, text in (
        ("grant", shares_grant, "share PATH with users and groups"),
        ("revoke", shares_revoke, "remove shares of PATH"),
    ):
        sub = command(shares, name, handler, text)
        sub.add_argument("path")
        sub.add_argument("--user", action="append", default=[], help="repeatable")
        sub.add_argument("--group", action="append", default=[], help="repeatable")
        if name == "grant":
            sub.add_argument("--permission", choices=("read", "write"), default="read")
    command(shares, "show", shares_show, "who can read PATH").add_argument("path")

    audit = area("audit", "the audit log (admin)")
    sub = command(audit, "tail", audit_tail, "the newest entries, oldest first")
    sub.add_argument("-n", "--lines", type=int, default=20)
    sub.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    sub.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    for key in ("actor", "action", "target"):
        sub.add_argument(f"--{key}")

    command(areas, "drift", drift, "compare stored policies with the records (admin)")
    command(areas, "regenerate", regenerate, "re-render every policy (admin)")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    url = args.url or os.environ.get("MMS_URL") or client.DEFAULT_URL
    api: Api | None = None
    try:
        api = Api.connect(url, client.read_token(args.token_file), args.timeout or 600.0)
        result = args.handler(api, args, out)
        if args.json and result is not None:
            dump_json(result, out)
    except CliError as exc:
        sys.stderr.write(f"mms: {exc.message}\n")
        return exc.code
    except KeyboardInterrupt:
        return 130
    finally:
        if api is not None:
            api.close()
    return client.OK
