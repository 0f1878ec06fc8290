from thingbucket.errors import NotFound


class ThingNotFound(NotFound):
    code = "THING_NOT_FOUND"
    message = "Thing not found."


class ThingKeyNotFound(NotFound):
    code = "KEY_NOT_FOUND"
    message = "Key not found."


class ThingTokenNotFound(NotFound):
    code = "TOKEN_NOT_FOUND"
    message = "Token not found."
