from thingbucket.errors import Invalid


class InvalidRange(Invalid):
    code = "INVALID_RANGE"
    message = "The time range is not valid."


class InvalidAggregate(Invalid):
    code = "INVALID_AGGREGATE"
    message = "The aggregate query is not valid."


class TooManyBuckets(Invalid):
    code = "TOO_MANY_BUCKETS"
    message = "The query asks for too many buckets."


class InvalidQuery(Invalid):
    code = "INVALID_QUERY"
    message = "These query parameters do not go together."
