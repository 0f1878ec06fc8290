"""Sharing: grants and groups management, above every package whose resources can be shared."""
