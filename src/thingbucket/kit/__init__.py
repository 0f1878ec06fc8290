"""Domain-free helpers: ids, time parsing, pagination, strict JSON, redaction."""
