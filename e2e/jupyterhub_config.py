"""JupyterHub configuration for the end-to-end tests (loaded by a real JupyterHub).

Everything comes from ``MMS_E2E_*`` environment variables set by ``e2e/conftest.py``; the
lines a deployment needs are the ``pre_spawn_hook`` ones near the end (see README, "Using it
from JupyterHub"). The authenticator is a small stand-in for a KBase one: the login form's
password field carries a KBase token, which is checked against KBase's ``/api/V2/me`` and
kept in ``auth_state`` — where a real KBase authenticator (reading the ``kbase_session``
cookie) keeps it too.
"""

# ruff: noqa: F821  (`c` is JupyterHub's config object, injected when this file is loaded)

from __future__ import annotations

import os
from typing import Any

import httpx
from jupyterhub.auth import Authenticator

from minio_manager_client.jupyterhub import make_pre_spawn_hook

E = os.environ
KBASE_URL = E["MMS_E2E_KBASE_URL"].rstrip("/") + "/"


class KBaseTokenAuthenticator(Authenticator):  # type: ignore[misc]
    """Log in with user name + KBase token; keep the token in ``auth_state``."""

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        token = (data.get("password") or "").strip()
        if not token:
            return None
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(KBASE_URL + "api/V2/me", headers={"Authorization": token})
        if answer.status_code != 200:
            self.log.warning(
                "KBase refused the login of %s (%s)", data.get("username"), answer.status_code
            )
            return None
        name = answer.json()["user"]
        if name != data.get("username"):
            return None
        return {"name": name, "auth_state": {"kbase_token": token}}


c.JupyterHub.bind_url = f"http://127.0.0.1:{E['MMS_E2E_HUB_PORT']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{E['MMS_E2E_HUB_API_PORT']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{E['MMS_E2E_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [E["MMS_E2E_CHP"]]
c.JupyterHub.db_url = "sqlite:///jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "jupyterhub_cookie_secret"
c.JupyterHub.log_level = "DEBUG"  # the strictest check that no secret reaches the log

c.JupyterHub.authenticator_class = KBaseTokenAuthenticator
c.Authenticator.enable_auth_state = True  # needs JUPYTERHUB_CRYPT_KEY
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.Spawner.cmd = [E["MMS_E2E_SINGLEUSER"]]
c.Spawner.args = ["--allow-root"]  # the test machine runs as root
c.Spawner.ip = "127.0.0.1"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.Spawner.default_url = "/lab"

c.JupyterHub.services = [{"name": "e2e", "api_token": E["MMS_E2E_HUB_API_TOKEN"]}]
c.JupyterHub.load_roles = [
    {
        "name": "e2e-driver",
        "scopes": ["admin:users", "admin:servers", "admin:auth_state", "admin:server_state"],
        "services": ["e2e"],
    }
]

# --- the lines a deployment needs --------------------------------------------------------------
c.Spawner.pre_spawn_hook = make_pre_spawn_hook(
    service_url=E["MMS_E2E_SERVICE_URL"],
    endpoint=E["MMS_E2E_S3_ENDPOINT"],
    # This image has no hadoop-aws bundled: point Spark at the cached jars. local[2] and no UI
    # suit the small test machine.
    spark_conf={
        "spark.jars": E["MMS_E2E_SPARK_JARS"],
        "spark.master": "local[2]",
        "spark.ui.enabled": "false",
    },
)
