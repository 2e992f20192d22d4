"""Numbered Tortoise migrations, applied at start (core.db.migrate).
Imports models/ (field types and enums) and core/ only."""
