"""A notebook user's Spark work, run with nothing but the environment the spawn hook set.

Run by ``e2e/test_jupyterhub_spark.py`` in the cached pyspark venv. The session is built with
no settings at all: endpoint, path style, SSL, jars and master come from
``PYSPARK_SUBMIT_ARGS``, the keys from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
(s3a's default credential chain). Each step in the JSON argument is tried; one JSON line per
step reports whether it worked or the store denied it, so the test can tell "denied" (wanted
for some steps) from any other failure.

Steps: ``{"op": "write", "path", "rows"}``, ``{"op": "read", "path"}`` (parquet),
``{"op": "read_csv", "path"}``, ``{"op": "table", "database", "location", "table", "rows"}``
(CREATE DATABASE [… LOCATION] + saveAsTable; without a location the database lands under
``spark.sql.warehouse.dir``, which the hook points at the user's SQL warehouse).

Results go to stdout, one ``MMS-E2E <json>`` line per step; Spark's own chatter to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pyspark.sql import SparkSession

DENIED_MARKERS = ("AccessDenied", "403 Forbidden", "Status Code: 403")


def run(spark: SparkSession, step: dict[str, Any]) -> dict[str, Any]:
    op = step["op"]
    if op == "write":
        frame = spark.range(step["rows"]).withColumnRenamed("id", "n")
        frame.write.mode("overwrite").parquet(step["path"])
        return {"rows": step["rows"]}
    if op == "read":
        return {"rows": spark.read.parquet(step["path"]).count()}
    if op == "read_csv":
        return {"rows": spark.read.option("header", "true").csv(step["path"]).count()}
    if op == "table":
        where = f" LOCATION '{step['location']}'" if step.get("location") else ""
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {step['database']}{where}")
        name = f"{step['database']}.{step['table']}"
        spark.range(step["rows"]).withColumnRenamed("id", "n").write.saveAsTable(name)
        return {"rows": spark.table(name).count()}
    raise ValueError(f"unknown step {op!r}")


def main() -> int:
    steps = json.loads(sys.argv[1])
    spark = SparkSession.builder.appName("mms-e2e").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for step in steps:
            result: dict[str, Any] = {"step": step, "ok": False, "denied": False}
            try:
                result.update(run(spark, step), ok=True)
            except Exception as exc:  # reported, not raised: the test decides what was wanted
                lines = str(exc).strip().splitlines() or [repr(exc)]
                # The line that names the store's refusal, else the first one.
                denial = [ln for ln in lines if any(m in ln for m in DENIED_MARKERS)]
                result["denied"] = bool(denial)
                result["error"] = (denial or lines)[0].strip()[:400]
            print("MMS-E2E " + json.dumps(result), flush=True)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
