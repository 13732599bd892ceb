#!/usr/bin/env bash
# make demo: Bosun's main job end to end on the local control plane with the offline planner.
# alice asks for a change, Bosun proposes the exact call with a dry-run diff, bob approves it with
# `kubectl annotate`, Bosun executes it as alice, verifies it, and the audit trail is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash tests/cluster/build.sh)
export PATH="$bin:$PATH" KUBECONFIG="$PWD/.cluster/kubeconfig"
logs="$PWD/.cluster/logs"
alice=(--kubeconfig "$PWD/.cluster/users/alice.kubeconfig")
bob=(--kubeconfig "$PWD/.cluster/users/bob.kubeconfig")
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Install Bosun's CRDs and identity policies, and give alice and bob their roles"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
for crd in agenttasks.bosun.dev approvalgrants.bosun.dev; do   # kubectl wait fails on a just-created CRD
  for _ in $(seq 300); do
    [ "$(kubectl get crd "$crd" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}')" = True ] && break
    sleep 0.2
  done
done
kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: bosun-demo-requester}
rules:
  - {apiGroups: [bosun.dev], resources: [agenttasks], verbs: [get, list, watch, create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: bosun-demo-approver}
rules:
  - {apiGroups: [bosun.dev], resources: [approvalgrants], verbs: [get, list, watch, create]}
  - {apiGroups: [bosun.dev], resources: [agenttasks], verbs: [get, list, watch, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-requests, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bosun-demo-requester}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-edits, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: sre-approves, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bosun-demo-approver}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: sre}]
EOF
echo "alice: may create AgentTasks and edit workloads in shop; bob (group sre): may approve there"

say "A sample app: deployment web in shop with 3 replicas"
kubectl -n shop delete agenttask scale-web --ignore-not-found >/dev/null
kubectl -n shop create deployment web --image=registry.example/web:1.0 --replicas=3 --dry-run=client -o yaml \
  | kubectl apply -f - >/dev/null
kubectl -n shop scale deployment web --replicas=3 >/dev/null
kubectl -n shop rollout status deployment/web --timeout=90s

say "Start the operator (offline planner; log: .cluster/logs/operator-demo.log)"
metrics_port=${BOSUN_METRICS_PORT:-9464}   # Prometheus /metrics of the operator (README, "Metrics")
metrics() { curl -s "127.0.0.1:$metrics_port/metrics" | grep -E '^bosun_(tasks\{|task_outcomes|task_[a-z_]+_count|tool_calls_total|grant_verdicts)' | grep -v -e ' 0.0$' -e '_created'; }
BOSUN_NAMESPACES=shop BOSUN_METRICS_PORT=$metrics_port uv run --frozen python -m bosun >"$logs/operator-demo.log" 2>&1 &
operator=$!
trap 'kill "$operator" 2>/dev/null; wait "$operator" 2>/dev/null || true' EXIT

say "alice asks: \"scale deployment web in shop to 5\""
run kubectl "${alice[@]}" apply -f examples/scale-task.yaml
kubectl -n shop wait --for=jsonpath='{.status.phase}'=AwaitingApproval agenttask/scale-web --timeout=120s >/dev/null
run kubectl -n shop get agenttask scale-web
echo
echo "Proposed call and its server-side dry-run diff:"
kubectl -n shop get agenttask scale-web -o go-template='{{range .status.proposal.steps}}  {{.id}}: {{.tool}} {{.args}}
{{with .diff}}{{.}}
{{end}}{{end}}  hash: {{.status.proposal.hash}}
'

say "Metrics while it awaits approval: curl 127.0.0.1:$metrics_port/metrics"
metrics

say "bob approves the proposal shown"
run kubectl "${bob[@]}" -n shop annotate agenttask scale-web approve=true
run kubectl -n shop wait --for=condition=Ready agenttask/scale-web --timeout=180s

say "Result"
run kubectl -n shop get agenttask scale-web
run kubectl -n shop get deployment web
kubectl -n shop get agenttask scale-web -o go-template='requester: {{.status.requester.user}}
summary:   {{.status.summary}}
checks:
{{range .status.verification.checks}}  [{{if .passed}}ok{{else}}FAILED{{end}}] {{.name}}: {{.message}}
{{end}}history:
{{range .status.steps}}  {{.id}} {{.tool}} {{.state}}{{range .approvedBy}} (approved by {{.user}}){{end}}
{{end}}'

say "Metrics once it is done"
metrics

say "Audit trail (Events)"
uid=$(kubectl -n shop get agenttask scale-web -o jsonpath='{.metadata.uid}')
kubectl -n shop get events --field-selector "involvedObject.uid=$uid" --sort-by=.eventTime \
  -o custom-columns=TIME:.eventTime,REASON:.reason,MESSAGE:.message
