"""Polaris-compatible configuration audit of Kubernetes objects.

Library entry point: :func:`audit_objects` (pure, no I/O) returns
:class:`Finding` records; :func:`score` computes Polaris's score from them.
"""

from pipeline.audit.config import AuditConfig, default_config, load_config
from pipeline.audit.evaluate import Finding, audit_objects
from pipeline.audit.score import score, summarize

__all__ = ["AuditConfig", "Finding", "audit_objects", "default_config", "load_config", "score", "summarize"]
