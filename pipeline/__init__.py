"""Peregrine: runtime threat detection for Kubernetes.

The package follows the data path:

    fields/   typed field registries per event source (syscall, k8s_audit, aws_cloudtrail)
    rules/    the Falco rules language: YAML loader, condition grammar, AST, compiler
    engine/   evaluation of a compiled rule set over events (evttype index)
    alerts/   alerts in Falco's JSON format
    stack/    the local Kafka + OpenSearch stack used by the demo and the tests
    audit/    Polaris-compatible configuration checks
    cli/      the `peregrine` command
"""

__version__ = "0.1.0"
