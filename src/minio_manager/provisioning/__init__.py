"""Provisioning: turning users and groups into store users, groups, policies and markers."""
