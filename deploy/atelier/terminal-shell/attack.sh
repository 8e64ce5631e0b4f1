#!/bin/sh
# Interactive shell in a container: run from a terminal on a workstation with
# kubectl access to the test cluster (the atelier pod of deploy/atelier/k8s/).
# The first exec gets a terminal (-t) and its shell's parent is the container
# runtime: that alerts. The second runs a command without a terminal: it must not.
# Usage: sh attack.sh [namespace] [pod]
set -eu
ns=${1:-peregrine-atelier}
pod=${2:-atelier}
kubectl -n "$ns" exec -it "$pod" -- sh -c 'id; cat /etc/hostname; ls /var/run/secrets/kubernetes.io/serviceaccount'
kubectl -n "$ns" exec "$pod" -- id
echo "terminal-shell: done (expect one 'Interactive shell in container')"
