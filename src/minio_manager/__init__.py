"""MinIO Manager Service: data governance for S3 lakehouses."""
