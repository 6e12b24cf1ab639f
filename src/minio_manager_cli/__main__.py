"""``python -m minio_manager_cli`` is the same as ``mms``."""

from minio_manager_cli.app import main

raise SystemExit(main())
