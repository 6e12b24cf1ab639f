"""MinIO Manager Service: data governance for S3 lakehouses."""

import sys

# httpx imports its command-line tool (``httpx._main``: click, rich, pygments) whenever those
# happen to be installed, and falls back to a stub when the import fails. The service never
# runs that tool: a ``None`` entry makes the import fail at once and saves ~3 MiB of RSS per
# process (docs/decisions.md, "Memory: the service's baseline"). Only before httpx is loaded.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
