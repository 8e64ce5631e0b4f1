#!/bin/sh
# A privileged pod sharing the node's PID namespace, created through the API
# server (its audit log records the create with the pod spec), then deleted.
# Run from a workstation with kubectl access to the test cluster.
# Usage: sh attack.sh [namespace]
set -eu
here=$(dirname "$0")
ns=${1:-peregrine-atelier}
kubectl -n "$ns" apply -f "$here/pod.yaml"
kubectl -n "$ns" wait --for=condition=Ready pod/atelier-privileged --timeout=60s || true
kubectl -n "$ns" delete pod atelier-privileged --wait=false
echo "privileged-pod: done (expect 'Privileged pod created' and the live audit's Polaris alerts)"
