"""A JupyterHub ``pre_spawn_hook`` that hands each user's server its object-store keys.

In ``jupyterhub_config.py``::

    from minio_manager_client.jupyterhub import make_pre_spawn_hook

    c.Authenticator.enable_auth_state = True      # the authenticator keeps the KBase token
    c.Spawner.pre_spawn_hook = make_pre_spawn_hook(
        service_url="https://mms.example.org",     # the MinIO Manager Service
        endpoint="https://minio.example.org",      # the object store as notebooks reach it
    )

Before each spawn the hook reads the user's KBase token from ``auth_state`` (key
``kbase_token`` unless told otherwise), calls ``GET /credentials/`` and ``GET /workspaces/me``
with it, and adds the variables of :func:`spawn_environment` to the server's environment. The
secret travels only in that environment — never on a command line (``PYSPARK_SUBMIT_ARGS``
carries settings only; s3a reads the keys from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
through its default credential chain) and never in a log line.

A failure stops the spawn with a ``tornado.web.HTTPError`` whose message is written for the
user (log in again / ask for the role / try again later), because JupyterHub shows that message
on the spawn page, while any other exception becomes a bare "500 Internal Server Error".
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from tornado.web import HTTPError

from minio_manager_client._core import RetryPolicy, auth_headers, normalise_base_url
from minio_manager_client.client import AsyncMinioManagerClient
from minio_manager_client.errors import (
    AuthenticationError,
    ForbiddenError,
    MinioManagerError,
    ServiceUnavailableError,
)
from minio_manager_client.models import Credentials, Workspace

DEFAULT_TOKEN_KEY: Final = "kbase_token"  # noqa: S105 - a dict key, not a secret
# Spawns are interactive: a user waits on the spawn page, and JupyterHub's own start timeout
# (60 s by default) covers the hook too. Three tries within ~10 s, then a clear message.
DEFAULT_SPAWN_RETRY: Final = RetryPolicy(attempts=3, base_delay=1.0, max_delay=4.0)
DEFAULT_SPAWN_TIMEOUT: Final = 20.0

PreSpawnHook = Callable[[Any], Awaitable[None]]


def s3a_settings(endpoint: str, region: str = "us-east-1") -> dict[str, str]:
    """Hadoop s3a settings (as ``spark.hadoop.*``) for a MinIO-style endpoint.

    Path-style access because MinIO serves buckets under the path, not as sub-domains; SSL
    follows the endpoint's scheme. No credential settings: s3a's default provider chain reads
    the environment variables, which keeps the secret off the command line.
    """
    scheme = urlsplit(endpoint).scheme
    if scheme not in ("http", "https"):
        raise ValueError("endpoint must be an http:// or https:// URL")
    return {
        "spark.hadoop.fs.s3a.endpoint": endpoint.rstrip("/"),
        "spark.hadoop.fs.s3a.endpoint.region": region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "true" if scheme == "https" else "false",
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
    }


def pyspark_submit_args(conf: Mapping[str, str], existing: str | None = None) -> str:
    """``PYSPARK_SUBMIT_ARGS``: what pyspark passes to spark-submit when a session starts.

    It must end with ``pyspark-shell``. Arguments already configured for the spawner are kept
    after ours, so an administrator's explicit ``--conf`` wins (spark-submit keeps the last).
    """
    args: list[str] = []
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    kept = shlex.split(existing) if existing else []
    if kept and kept[-1] == "pyspark-shell":
        kept.pop()
    return shlex.join([*args, *kept, "pyspark-shell"])


def spawn_environment(
    credentials: Credentials,
    workspace: Workspace,
    *,
    endpoint: str,
    region: str = "us-east-1",
    spark_conf: Mapping[str, str] | None = None,
    existing_submit_args: str | None = None,
) -> dict[str, str]:
    """Every variable the hook sets, by the names the usual tools read.

    AWS SDKs, boto3, the AWS CLI and Hadoop s3a read ``AWS_*``; the MinIO SDK helpers in
    notebooks read ``MINIO_*``; pyspark reads ``PYSPARK_SUBMIT_ARGS``; ``MMS_*`` name the
    user's homes so notebooks need not rebuild the layout.
    """
    parts = urlsplit(endpoint)
    conf = {
        **s3a_settings(endpoint, region),
        # Databases created without a location land under the user's governed SQL warehouse.
        "spark.sql.warehouse.dir": workspace.sql_warehouse,
        **(spark_conf or {}),
    }
    return {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_ENDPOINT_URL": endpoint.rstrip("/"),
        "AWS_ENDPOINT_URL_S3": endpoint.rstrip("/"),
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "MINIO_ENDPOINT_URL": endpoint.rstrip("/"),
        "MINIO_ENDPOINT": parts.netloc,
        "MINIO_SECURE": "true" if parts.scheme == "https" else "false",
        "MINIO_ACCESS_KEY": credentials.access_key,
        "MINIO_SECRET_KEY": credentials.secret_key,
        "MMS_USERNAME": credentials.username,
        "MMS_USER_HOME": workspace.general_home,
        "MMS_USER_SQL_WAREHOUSE": workspace.sql_warehouse,
        "PYSPARK_SUBMIT_ARGS": pyspark_submit_args(conf, existing_submit_args),
    }


def spawn_error(status: int, message: str) -> HTTPError:
    """An ``HTTPError`` JupyterHub shows as is: on the spawn page and in its REST answer.

    ``log_message`` feeds the REST answer and the hub log; ``jupyterhub_message`` the
    progress page. ``%`` is doubled because tornado formats ``log_message``.
    """
    error = HTTPError(status, message.replace("%", "%%"))
    error.jupyterhub_message = message  # type: ignore[attr-defined]
    return error


def _user_message(exc: MinioManagerError) -> HTTPError:
    ref = f" (reference: {exc.request_id})" if exc.request_id else ""
    if isinstance(exc, AuthenticationError):
        return spawn_error(
            403,
            "KBase did not accept your login token (it may have expired or been revoked). "
            "Log out of JupyterHub, log in again, then start your server.",
        )
    if isinstance(exc, ForbiddenError):
        return spawn_error(
            403,
            f"Your KBase account may not use the data lakehouse: {exc.message}. "
            f"Ask your KBase administrator for the required role{ref}.",
        )
    if isinstance(exc, ServiceUnavailableError):
        return spawn_error(
            503,
            "The data-lakehouse credential service is unavailable right now; "
            f"please try starting your server again in a few minutes{ref}.",
        )
    return spawn_error(
        500,
        f"Could not get your data-lakehouse credentials: {exc.message}{ref}. "
        "Please contact support.",
    )


def make_pre_spawn_hook(
    service_url: str,
    endpoint: str,
    *,
    token_key: str = DEFAULT_TOKEN_KEY,
    region: str = "us-east-1",
    spark_conf: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_SPAWN_TIMEOUT,
    retry: RetryPolicy = DEFAULT_SPAWN_RETRY,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PreSpawnHook:
    """A ready ``c.Spawner.pre_spawn_hook``.

    ``endpoint`` is the object store as the single-user servers reach it (it may differ from
    the address the service uses). ``spark_conf`` adds or overrides Spark settings, e.g.
    ``spark.jars`` for images that do not bundle ``hadoop-aws``. ``transport`` is for tests.
    """
    if urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError("endpoint must be an http:// or https:// URL")
    normalise_base_url(service_url)  # a configuration mistake fails at hub start, not per spawn
    extra = dict(spark_conf or {})

    async def pre_spawn_hook(spawner: Any) -> None:
        user = spawner.user
        log = spawner.log
        auth_state = await user.get_auth_state()
        token = (auth_state or {}).get(token_key)
        if not isinstance(token, str) or not token.strip():
            log.warning("mms: no KBase token in auth_state[%r] for %s", token_key, user.name)
            raise spawn_error(
                403,
                "Your KBase login is not available to JupyterHub (no token was kept at login). "
                "Log out of JupyterHub, log in again, then start your server.",
            )
        try:
            auth_headers(token)
        except ValueError:
            # A token with a line break cannot go into a header; say so without echoing it.
            log.warning("mms: malformed KBase token in auth_state for %s", user.name)
            raise spawn_error(
                403,
                "Your stored KBase login token is malformed. Log out of JupyterHub and log in "
                "again, then start your server.",
            ) from None
        try:
            async with AsyncMinioManagerClient(
                service_url, token, timeout=timeout, retry=retry, transport=transport
            ) as mms:
                credentials = await mms.get_credentials()
                workspace = await mms.get_workspace()
        except MinioManagerError as exc:
            # The service's message and code only: neither holds the token or a secret.
            log.warning("mms: credentials for %s not issued: %s", user.name, exc)
            raise _user_message(exc) from None
        existing = spawner.environment.get("PYSPARK_SUBMIT_ARGS")
        env = spawn_environment(
            credentials,
            workspace,
            endpoint=endpoint,
            region=region,
            spark_conf=extra,
            # A callable value (JupyterHub allows them) is replaced, not merged.
            existing_submit_args=existing if isinstance(existing, str) else None,
        )
        spawner.environment.update(env)
        log.info(
            "mms: object-store credentials set for %s (access key %s, %d variables)",
            user.name,
            credentials.access_key,
            len(env),
        )

    return pre_spawn_hook
