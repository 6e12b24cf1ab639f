"""``mms``: the administrator's command line for the MinIO Manager Service (HTTP API only)."""
