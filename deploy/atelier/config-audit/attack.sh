#!/bin/sh
# Configuration drift through the API server: a Deployment that fails Polaris
# checks (root, no resources, no probes, :latest, writable root filesystem...)
# next to a hardened one that passes them all. The live audit of the worker
# (Polaris checks on objects in K8s audit events) alerts on the first only; the
# ReplicaSets and Pods the controllers create from them are not audited again.
# Run from a workstation with kubectl access to the test cluster.
# Usage: sh attack.sh [namespace]
set -eu
here=$(dirname "$0")
ns=${1:-peregrine-atelier}
kubectl -n "$ns" apply -f "$here/deployments.yaml"
echo "config-audit: done (expect the Polaris alerts of atelier-legacy-web, none for atelier-hardened-api)"
echo "clean up: kubectl -n $ns delete -f $here/deployments.yaml"
