"""Grants, the one policy function ``can()``, visibility filters, and the audit log."""
