"""Whole files: layout plan, seal, open, verify, rekey (docs/FORMAT.md)."""
