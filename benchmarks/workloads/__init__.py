"""Importing this package registers every implemented workload (see benchmarks.core.workload).

To add a target: write a function ``(ctx: Context) -> Row`` in a module here, decorate it with
``@workload("P<n>")`` and import the module below.
"""

from benchmarks.workloads import aggregates, cold, ingest, memory, mqtt, multidim, reads

__all__ = ["aggregates", "cold", "ingest", "memory", "mqtt", "multidim", "reads"]
