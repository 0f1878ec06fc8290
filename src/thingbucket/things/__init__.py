"""Things, their public keys and device tokens, thing JWT verification, and the alias table."""
