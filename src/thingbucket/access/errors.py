from thingbucket.errors import Forbidden


class AccessDenied(Forbidden):
    code = "FORBIDDEN"
    message = "You are not allowed to do this."
