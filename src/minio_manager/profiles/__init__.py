"""User profiles captured from KBase."""
