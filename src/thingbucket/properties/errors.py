from thingbucket.errors import Conflict, Forbidden, NotFound


class PropertyNotFound(NotFound):
    code = "PROPERTY_NOT_FOUND"
    message = "Property not found."


class PropertyTypeNotFound(NotFound):
    code = "PROPERTY_TYPE_NOT_FOUND"
    message = "Property type not found."


class PropertyNameTaken(Conflict):
    code = "PROPERTY_NAME_TAKEN"
    message = "The thing has a property with this name already."


class PropertyTypeExists(Conflict):
    code = "PROPERTY_TYPE_EXISTS"
    message = "A property type with this id exists already."


class BuiltinType(Forbidden):
    code = "FORBIDDEN"
    message = "Built-in property types are read-only."
