from thingbucket.errors import Conflict, NotFound


class BucketNotFound(NotFound):
    code = "BUCKET_NOT_FOUND"
    message = "Bucket not found."


class KeyNotFound(NotFound):
    code = "KEY_NOT_FOUND"
    message = "Key not found."


class BucketNameTaken(Conflict):
    code = "BUCKET_NAME_TAKEN"
    message = "The organization has a bucket with this name already."
