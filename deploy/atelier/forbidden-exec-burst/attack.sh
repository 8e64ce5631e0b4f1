#!/bin/sh
# A credential probing for a pod it may exec into: 25 kubectl exec attempts
# with the token of the atelier-viewer ServiceAccount (deploy/atelier/k8s/rbac.yaml),
# which may get and list pods but not exec into them. kubectl first reads the
# pod (allowed), then asks for the exec (denied, 403); the API server's audit
# log records both. Run from a workstation with kubectl access to the test cluster.
# Usage: sh attack.sh [namespace] [attempts]
set -u
ns=${1:-peregrine-atelier}
attempts=${2:-25}
token=$(kubectl -n "$ns" create token atelier-viewer --duration=10m) || exit 1
for i in $(seq 1 "$attempts"); do
  if [ $((i % 2)) -eq 1 ]; then pod=atelier-target; else pod=atelier; fi
  kubectl --token="$token" -n "$ns" exec "$pod" -- id >/dev/null 2>&1 || true
done
echo "forbidden-exec-burst: done (expect one 'Repeated forbidden kubectl exec')"
