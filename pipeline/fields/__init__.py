"""Typed field registries, one per event source: what a rule may read from an event."""
