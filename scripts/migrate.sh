#!/usr/bin/env bash
# Database migrations (Alembic; alembic.ini at the repository root). The database settings come
# from the environment, e.g. `eval "$(scripts/stack.sh env)"` for the local stack.
#
#   scripts/migrate.sh status            current revision
#   scripts/migrate.sh history           all revisions, verbose
#   scripts/migrate.sh up                upgrade to head
#   scripts/migrate.sh up1               upgrade one revision
#   scripts/migrate.sh down1             downgrade one revision
#   scripts/migrate.sh down-all [--yes]  downgrade to base (drops every table): asks to type
#                                        `yes`; without a terminal only with --yes
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

read -r -a UV_CMD <<<"${UV:-uv}"
alembic() { "${UV_CMD[@]}" run alembic "$@"; }

usage() {
    echo "usage: $0 status|history|up|up1|down1|down-all [--yes]" >&2
    exit 2
}

cmd=${1:-}
shift || true
yes=0
for arg in "$@"; do
    case "$arg" in
    --yes) yes=1 ;;
    *) usage ;;
    esac
done
if ((yes)) && [[ $cmd != down-all ]]; then usage; fi

case "$cmd" in
status) alembic current ;;
history) alembic history --verbose ;;
up) alembic upgrade head ;;
up1) alembic upgrade +1 ;;
down1) alembic downgrade -1 ;;
down-all)
    if ((!yes)); then
        if [[ ! -t 0 ]]; then
            echo "down-all drops every table; without a terminal pass --yes to confirm" >&2
            exit 1
        fi
        db="${MMS_DB_USER:-?}@${MMS_DB_HOST:-?}:${MMS_DB_PORT:-5432}/${MMS_DB_NAME:-?}"
        read -r -p "Downgrade $db to base, dropping every table? Type 'yes' to continue: " answer
        if [[ $answer != yes ]]; then
            echo "aborted" >&2
            exit 1
        fi
    fi
    alembic downgrade base
    ;;
*) usage ;;
esac
