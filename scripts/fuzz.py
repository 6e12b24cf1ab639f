"""`make fuzz`: schemathesis (--checks all) over every operation, as an admin and as a user.

Starts what it needs on free ports and tears it down again: the KBase stand-in (in-process,
with two fresh users), and one service process against the local stack (`scripts/stack.sh
up`) with a database of its own (``mms_fuzz``, recreated each run) and Redis database 14, so
nothing here touches the data of `make dev` (database ``mms``, Redis 0) or of the tests
(``mms_test_<pid>``, Redis 15). The object store is shared: the fuzzer creates users and
groups with generated names, which are deleted again at the end (every `user.create`,
`credentials.issue` and `group.create` of the fuzz database's audit log), and its
`regenerate-policies` calls re-render the policies of every principal in that MinIO from the
fuzz database — run `POST /management/migrate/regenerate-policies` from `make dev` afterwards
if you keep shares there (records are never touched, so that repairs them).

Deterministic (fixed seed) and bounded (examples per operation); exit status 0 only when both
runs find no failure. Usage: python scripts/fuzz.py [--max-examples N] [--seed S].
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.support.kbase import KBase  # noqa: E402
from tests.support.processes import service_process  # noqa: E402
from tests.support.stack import drop_database, recreate_database, stack_env  # noqa: E402

FUZZ_DB = "mms_fuzz"
FUZZ_REDIS_DB = 14


def _schemathesis(url: str, token: str, label: str, args: argparse.Namespace, out: Path) -> int:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        str(REPO / "scripts" / "fuzz.toml"),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(args.max_examples),
        "--seed",
        str(args.seed),
        "--workers",
        "1",
        "--report",
        "junit",
        "--report-dir",
        str(out / label),
        "-H",
        f"Authorization: Bearer {token}",
    ]
    print(f"== fuzz as {label}", flush=True)
    started = time.monotonic()
    code = subprocess.call(command, cwd=REPO)
    print(f"== fuzz as {label}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
    return code


def _created(http: httpx.Client, action: str) -> set[str]:
    names: set[str] = set()
    page = 1
    while True:
        answer = http.get(
            "/management/audit", params={"action": action, "page": page, "page_size": 500}
        )
        answer.raise_for_status()
        body = answer.json()
        names.update(entry["target"] for entry in body["entries"])
        if not body["has_next"]:
            return names
        page += 1


def _clean_up(url: str, token: str) -> None:
    """Delete the store users and groups the fuzz service created (best effort, reported)."""
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
    ) as http:
        users = _created(http, "user.create") | _created(http, "credentials.issue")
        groups = _created(http, "group.create") - {"globalusers"}  # everyone's; kept
        failed = []
        for kind, names in (("users", users), ("groups", groups)):
            for name in sorted(names):
                answer = http.delete(f"/management/{kind}/{name}")
                if answer.status_code not in (200, 404):
                    failed.append(f"{kind}/{name}: {answer.status_code}")
        print(f"fuzz: removed {len(users)} users and {len(groups)} groups; not removed: {failed}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", 10))
    )
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", 20260202)))
    args = parser.parse_args()

    stack = stack_env()
    asyncio.run(recreate_database(stack, FUZZ_DB))
    kbase = KBase()
    out = Path(tempfile.mkdtemp(prefix="mms-fuzz-"))
    try:
        env = {
            **stack,
            "MMS_DB_NAME": FUZZ_DB,
            "REDIS_URL": stack["REDIS_URL"].rsplit("/", 1)[0] + f"/{FUZZ_REDIS_DB}",
            "KBASE_AUTH_URL": kbase.url,
            "LOG_LEVEL": "WARNING",
            # Locks are not what is fuzzed: fail fast rather than wait the production 30 s.
            "CREDENTIAL_LOCK_WAIT_SECONDS": "10",
        }
        admin = kbase.add_user(admin=True)
        user = kbase.add_user()
        with service_process(env, out / "service.log") as url:
            try:
                results = [
                    _schemathesis(url, admin.token, "admin", args, out),
                    _schemathesis(url, user.token, "user", args, out),
                ]
            finally:
                _clean_up(url, admin.token)
        print(f"fuzz: reports and the service log in {out}")
        return 0 if all(code == 0 for code in results) else 1
    finally:
        kbase.close()
        asyncio.run(drop_database(stack, FUZZ_DB))


if __name__ == "__main__":
    sys.exit(main())
