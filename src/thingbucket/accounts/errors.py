from thingbucket.errors import Conflict, Invalid, NotFound


class PersonNotFound(NotFound):
    code = "PERSON_NOT_FOUND"
    message = "Person not found."


class OrgNotFound(NotFound):
    code = "ORG_NOT_FOUND"
    message = "Organization not found."


class TokenNotFound(NotFound):
    code = "TOKEN_NOT_FOUND"
    message = "Token not found."


class EmailTaken(Conflict):
    code = "EMAIL_TAKEN"
    message = "A person with this e-mail address exists already."


class InvalidGrant(Invalid):
    code = "INVALID_GRANT"
    message = "Invalid username, password or refresh token."


class UnsupportedGrantType(Invalid):
    code = "UNSUPPORTED_GRANT_TYPE"
    message = "grant_type must be password or refresh_token."


class InvalidPassword(Invalid):
    code = "INVALID_PASSWORD"
    message = "A password has 8 to 1024 characters."


class InvalidEmail(Invalid):
    code = "INVALID_EMAIL"
    message = "Not a valid e-mail address."


class LastOwner(Conflict):
    code = "LAST_OWNER"
    message = "An organization keeps at least one owner."
