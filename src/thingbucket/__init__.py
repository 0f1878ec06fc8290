"""thingbucket: a self-hosted data bucket for connected devices."""

__version__ = "0.1.0"
