"""thingbucket's benchmark suite: the targets P1..P10 of ``shared/specs/performance.md``.

Run ``uv run python -m benchmarks [--quick]``; it starts the server it needs on a free loopback
port, measures each workload against its reference in the same run, prints one table and writes
``benchmarks/results/latest.json``.
"""
