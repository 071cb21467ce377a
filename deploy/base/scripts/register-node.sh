# Creates this node's projectcalico.org/v3 Node resource in the datastore when there is none,
# as calico-node does at start: name from the Kubernetes node, address from the interface that
# holds the node's address (with its prefix length, which tells which nodes share a subnet).
# An existing Node is left as it is, so Nodes an operator applied (labels for rack selectors,
# a per-rack asNumber, a routeReflectorClusterID) are never overwritten.
#
# Environment:
#   TORTIE            the tortie binary
#   NODE_NAME         the Kubernetes node's name (downward API spec.nodeName)
#   HOST_IP           the node's address (downward API status.hostIP)
#   NODE_LABELS       optional, "key=value,key=value": labels of the created Node
#   ROUTE_REFLECTOR_CLUSTER_ID
#                     optional: the created Node reflects routes with this cluster ID
#   ETCD_ENDPOINTS, ETCD_CA_CERT, ETCD_CERT, ETCD_KEY
#                     the datastore, as the agent is given it
set -eu

fail() {
  echo "register-node: $*" >&2
  exit 1
}

for v in TORTIE NODE_NAME HOST_IP ETCD_ENDPOINTS ETCD_CA_CERT ETCD_CERT ETCD_KEY; do
  eval "val=\${$v:-}"
  [ -n "$val" ] || fail "$v is not set"
done

store() {
  "$TORTIE" "$@" --etcd-endpoints "$ETCD_ENDPOINTS" --etcd-ca-cert "$ETCD_CA_CERT" \
    --etcd-cert "$ETCD_CERT" --etcd-key "$ETCD_KEY"
}

if out="$(store get node "$NODE_NAME" 2>&1)"; then
  echo "register-node: Node $NODE_NAME exists; leaving it as it is"
  exit 0
fi
case "$out" in
  *"not found"*) ;;
  *) fail "cannot read Node $NODE_NAME from the datastore: $out" ;;
esac

# The interface address equal to HOST_IP, with its prefix length.
cidr="$(ip -o -4 addr show | awk -v ip="$HOST_IP" '{ split($4, a, "/"); if (a[1] == ip) { print $4; exit } }')"
[ -n "$cidr" ] || fail "no interface holds HOST_IP=$HOST_IP (ip -4 addr show: $(ip -o -4 addr show | awk '{ print $2, $4 }' | tr '\n' ' '))"

labels=""
if [ -n "${NODE_LABELS:-}" ]; then
  old_ifs="$IFS"
  IFS=,
  for kv in $NODE_LABELS; do
    case "$kv" in
      ?*=*) labels="$labels
    ${kv%%=*}: \"${kv#*=}\"" ;;
      *) fail "NODE_LABELS: \"$kv\" is not key=value" ;;
    esac
  done
  IFS="$old_ifs"
fi

{
  echo "apiVersion: projectcalico.org/v3"
  echo "kind: Node"
  echo "metadata:"
  echo "  name: \"$NODE_NAME\""
  [ -z "$labels" ] || echo "  labels:$labels"
  echo "spec:"
  echo "  bgp:"
  echo "    ipv4Address: \"$cidr\""
  [ -z "${ROUTE_REFLECTOR_CLUSTER_ID:-}" ] || echo "    routeReflectorClusterID: \"$ROUTE_REFLECTOR_CLUSTER_ID\""
} | store apply -f - || fail "tortie apply of Node $NODE_NAME failed"
echo "register-node: created Node $NODE_NAME with ipv4Address $cidr"
