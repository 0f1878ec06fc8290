"""Organizations, persons, memberships, groups, passwords and person tokens."""
