"""Tools for development: the local split supervisor (`run-split`), the demo walk-through, demo data."""
