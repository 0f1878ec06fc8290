"""Property types with ordered dimensions, and properties of things."""
