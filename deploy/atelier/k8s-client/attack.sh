#!/bin/sh
# Discovery with a Kubernetes client from inside a workload: three kubectl runs.
# The atelier image's kubectl is a stub that prints and sends no request.
# Usage: sh attack.sh
set -eu
kubectl version --client
kubectl auth can-i --list
kubectl get secrets -A
echo "k8s-client: done (expect three 'Kubernetes client run in container')"
