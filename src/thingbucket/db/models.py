"""Imports every model so that ``Base.metadata`` is complete (Alembic, tests)."""

from thingbucket.access import models as access_models
from thingbucket.accounts import models as accounts_models
from thingbucket.buckets import models as buckets_models
from thingbucket.db.base import Base
from thingbucket.points import models as points_models
from thingbucket.properties import models as properties_models
from thingbucket.things import models as things_models

__all__ = [
    "Base",
    "access_models",
    "accounts_models",
    "buckets_models",
    "points_models",
    "properties_models",
    "things_models",
]
