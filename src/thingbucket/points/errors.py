from thingbucket.errors import Invalid


class InvalidRange(Invalid):
    code = "INVALID_RANGE"
    message = "The time range is not valid."
