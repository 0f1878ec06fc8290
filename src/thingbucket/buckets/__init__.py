"""Buckets, API keys (organization or bucket scope) and retention settings."""
