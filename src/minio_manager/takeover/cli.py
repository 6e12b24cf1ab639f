"""``mms-import``: take over a deployment of the reference service (dry run by default).

    mms-import                          report what would be imported; writes nothing
    mms-import --apply                  migrate the database, record the shares, mark users
                                        managed, render policies through the outbox, delete
                                        shadow leftovers
    mms-import --apply --rotate-short-secrets
                                        … and give every user holding a short reference
                                        secret a new one (they fetch it with GET /credentials/)
    mms-import --json                   the report as JSON

Settings come from the environment, exactly as for the service. The report names users,
groups, paths and policies, never a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from minio_manager.bootstrap import build_services
from minio_manager.config import ConfigurationError, Settings, load_settings
from minio_manager.credentials.secrets import SECRET_LENGTH
from minio_manager.db.migrations import upgrade_to_head
from minio_manager.errors import ServiceError
from minio_manager.takeover.importer import ImportOptions, ImportReport, ReferenceImporter

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_PARTIAL = 3
"""--apply finished, but some principal is still pending (the reconciler renders it) or some
secret was not rotated."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mms-import",
        description="Import shares, users and secrets of a reference-service deployment.",
    )
    parser.add_argument("--apply", action="store_true", help="write (default: dry run)")
    parser.add_argument(
        "--rotate-short-secrets",
        action="store_true",
        help=f"rotate every cached secret shorter than {SECRET_LENGTH} characters"
        " (default: keep them, so existing keys keep working)",
    )
    parser.add_argument(
        "--only-prefix",
        metavar="PREFIX",
        help="only principals whose name starts with PREFIX (plus globalusers/globalusersro)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


async def run_import(settings: Settings, options: ImportOptions) -> ImportReport:
    """Migrate (only with ``apply``), then plan or apply the import."""
    if options.apply:
        await upgrade_to_head(settings)
    services = build_services(settings)
    try:
        return await ReferenceImporter(services, options).run()
    finally:
        await services.close()


def render_text(report: ImportReport) -> str:
    data = report.to_dict()
    lines: list[str] = []
    if report.applied:
        lines.append("mms-import: APPLIED")
    else:
        lines.append("mms-import: DRY RUN, nothing was written (pass --apply to import)")
    scanned = data["scanned"]
    lines.append(
        f"scanned: {scanned['users']} users, {scanned['groups']} groups,"
        f" {scanned['policies']} policy documents"
    )
    shares = data["shares"]
    verb = "recorded" if report.applied else "to record"
    lines.append(
        f"shares found: {shares['found']}; new ({verb}): {shares['new']};"
        f" already recorded: {shares['already_recorded']}"
    )
    for item in shares["new_items"]:
        lines.append(
            f"  + {item['target_type']} {item['target_name']} {item['level']}"
            f" {item['path']} (owner {item['owner']})"
        )
    for conflict in shares["level_conflicts"]:
        lines.append(f"  ! {conflict}")
    narrowings = report.narrowings
    lines.append(f"narrowed or not imported (access that ends once policies are rendered): "
                 f"{len(narrowings)}")  # fmt: skip
    for f in narrowings:
        lines.append(f"  - [{f.kind}] {f.target_type} {f.target_name} ({f.policy}): {f.detail}")
    harmless = [f for f in report.findings if not f.narrowing]
    if harmless:
        lines.append(f"not interpreted, no access lost: {len(harmless)}")
        for f in harmless:
            lines.append(f"  - [{f.kind}] {f.target_type} {f.target_name} ({f.policy}): {f.detail}")
    lines.append(f"shadow policies left by the reference: {len(report.shadows)}")
    for shadow in report.shadows:
        where = ", ".join(shadow.attached_to) or "not attached"
        status = "deleted" if shadow.deleted else (shadow.error or "kept")
        if not report.applied:
            status = "would be deleted"
        note = "grants imported" if shadow.attached_to else "grants not in force, not imported"
        lines.append(f"  - {shadow.name} ({where}; {note}; {status})")
    managed = data["managed_users"]
    if not managed["table_present"]:
        lines.append("managed users: this database has no managed_users table; nothing to mark")
    elif report.applied:
        lines.append(
            f"managed users: {len(managed['newly_marked'])} newly marked,"
            f" {managed['candidates']} reference users in all"
        )
    else:
        lines.append(f"managed users: {managed['candidates']} reference users would be marked")
    if managed["store_users_left_unmanaged"]:
        lines.append(
            "  store users left unmanaged (no reference home policy, no cached credentials): "
            + ", ".join(managed["store_users_left_unmanaged"])
        )
    if report.credentials_without_store_user:
        lines.append(
            "  cached credentials of users missing from the object store: "
            + ", ".join(report.credentials_without_store_user)
        )
    secrets = data["secrets"]
    lines.append(
        f"secrets shorter than {SECRET_LENGTH} characters: {secrets['short_count']};"
        f" {secrets['action']}"
        + (" (existing keys keep working)" if "keep" in secrets["action"] else "")
    )
    if report.rotated:
        lines.append(
            f"  rotated: {len(report.rotated)} (users fetch theirs with GET /credentials/)"
        )
    for failure in report.rotation_failures:
        lines.append(f"  rotation failed: {failure}")
    if report.applied:
        rendered = data["rendered"]
        lines.append(
            f"policies rendered from records: {rendered['users']} users,"
            f" {rendered['groups']} groups; errors: {len(rendered['errors'])}"
        )
        for error in rendered["errors"]:
            lines.append(f"  pending: {error}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"mms-import: {exc}", file=sys.stderr)
        return EXIT_FAILED
    options = ImportOptions(
        apply=args.apply,
        rotate_short_secrets=args.rotate_short_secrets,
        only_prefix=args.only_prefix,
    )
    try:
        report = asyncio.run(run_import(settings, options))
    except ServiceError as exc:
        print(f"mms-import: failed: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_text(report))
    if report.applied and (report.render_errors or report.rotation_failures):
        return EXIT_PARTIAL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
