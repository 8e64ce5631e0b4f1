"""Per-container state kept by the streaming workers."""
