"""Inventory: the catalog, stock levels and per-order reservations."""
