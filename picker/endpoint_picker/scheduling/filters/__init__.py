"""Filters: narrow the candidate set; the scheduler ignores a filter that would drop everything."""
