#!/bin/sh
# A credential probing for a pod it may exec into: 25 kubectl exec attempts
# with the token of the atelier-viewer ServiceAccount (deploy/atelier/k8s/rbac.yaml),
# which may list pods but not exec. The API server denies each one (403) and
# records it in its audit log. Run from a workstation with kubectl access.
# Usage: sh attack.sh [namespace] [attempts]
set -u
ns=${1:-peregrine-atelier}
attempts=${2:-25}
token=$(kubectl -n "$ns" create token atelier-viewer --duration=10m) || exit 1
for i in $(seq 1 "$attempts"); do
  pod=$(printf 'atelier-target-%02d' "$i")
  kubectl --token="$token" -n "$ns" exec "$pod" -- id >/dev/null 2>&1 || true
done
echo "forbidden-exec-burst: done (expect one 'Repeated forbidden kubectl exec')"
