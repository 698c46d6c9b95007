"""Saga store implementations: in-memory (tests, single process) and MongoDB (durable)."""
