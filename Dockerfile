# MinIO Manager Service image. Build: docker build -t minio-manager .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PATH="/app/.venv/bin:$PATH" \
    MMS_ALEMBIC_INI=/app/alembic.ini

# Same uv release as the one the lock file is maintained with.
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app

# Dependencies first (cached while only the code changes), then the project itself.
COPY pyproject.toml uv.lock README.md ./
# The client is only a dev dependency, but uv reads its metadata to check the lock file.
COPY clients/python ./clients/python
RUN uv sync --locked --no-dev --no-install-project

COPY src ./src
COPY alembic ./alembic
COPY alembic.ini ./
COPY scripts ./scripts
RUN uv sync --locked --no-dev --no-editable

# Runs as a fixed non-root uid/gid (numeric, so Kubernetes' runAsNonRoot can verify it); the
# image needs no writable path besides /tmp, so it runs with a read-only root filesystem.
RUN groupadd --system --gid 10001 mms \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin mms
USER 10001:10001

EXPOSE 8000
# Migrations run at start-up from /app/alembic.ini (MMS_ALEMBIC_INI: the package itself is
# installed into the venv, away from the repository layout).
CMD ["uvicorn", "minio_manager.main:app", "--host", "0.0.0.0", "--port", "8000"]
