from thingbucket.errors import Invalid, NotFound


class GrantNotFound(NotFound):
    code = "GRANT_NOT_FOUND"
    message = "No such grant."


class GroupNotFound(NotFound):
    code = "GROUP_NOT_FOUND"
    message = "No such group."


class SubjectNotFound(Invalid):
    code = "SUBJECT_NOT_FOUND"
    message = "The grant's subject does not exist."


class UnsupportedResource(Invalid):
    code = "UNSUPPORTED_RESOURCE"
    message = "Grants on this kind of resource are not available yet."
