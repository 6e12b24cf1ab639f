"""Operating the service: Prometheus metrics and structured logs (see README "Operating it")."""
