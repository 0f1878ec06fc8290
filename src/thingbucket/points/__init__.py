"""Series, samples (narrow, keyed by series and time), the writer, raw reads and deletes."""
