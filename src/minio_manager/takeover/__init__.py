"""Taking over a deployment of the reference service (mms-import)."""
