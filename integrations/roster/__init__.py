"""Roster backends: the local MongoDB roster, its records, CSV import and the async service."""
