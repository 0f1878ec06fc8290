"""Organization quotas (security.md §5.2); counted by the caller's repository, enforced here."""

from __future__ import annotations

from thingbucket.errors import Forbidden

BUCKETS_PER_ORG = 100
THINGS_PER_ORG = 10_000
PROPERTIES_PER_THING = 1_000
PROPERTIES_PER_ORG = 100_000
KEYS_PER_BUCKET = 100
KEYS_PER_THING = 3


class QuotaExceeded(Forbidden):
    code = "QUOTA_EXCEEDED"
    message = "A quota of the organization is exhausted."


def check(count: int, limit: int, what: str) -> None:
    if count >= limit:
        raise QuotaExceeded(f"At most {limit} {what}.")
