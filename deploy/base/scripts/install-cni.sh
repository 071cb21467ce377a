# Installs the tortie CNI plugin and its network configuration on the host, as calico-node's
# install-cni step does. Run by the DaemonSet's first init container (the image's busybox sh).
#
# Every file is written under a temporary name and renamed into place, so the container
# runtime never runs a half-copied plugin nor reads a half-written configuration, and a plugin
# binary that is executing is replaced rather than overwritten ("text file busy").
#
# Environment (every path is set by the manifest):
#   TORTIE            the tortie binary in the image; installed as tortie-cni
#   CNI_BIN_DIR       the host's /opt/cni/bin, mounted
#   CNI_NET_DIR       the host's /etc/cni/net.d, mounted
#   CNI_CONF          the conflist template (ConfigMap tortie-cni-config)
#   NODE_NAME, ETCD_ENDPOINTS, ETCD_CA_CERT, ETCD_CERT, ETCD_KEY
#                     substituted into the template: __NODE_NAME__, and __ETCD_ENDPOINTS__
#                     inside ["..."] (a comma-separated list becomes the JSON array's items);
#                     the three TLS files are copied to CNI_NET_DIR/tortie-tls/, where the
#                     plugin, run by the container runtime on the host, reads them.
set -eu

fail() {
  echo "install-cni: $*" >&2
  exit 1
}

for v in TORTIE CNI_BIN_DIR CNI_NET_DIR CNI_CONF NODE_NAME ETCD_ENDPOINTS ETCD_CA_CERT ETCD_CERT ETCD_KEY; do
  eval "val=\${$v:-}"
  [ -n "$val" ] || fail "$v is not set"
done
[ -f "$TORTIE" ] || fail "TORTIE=$TORTIE: no such file"
[ -f "$CNI_CONF" ] || fail "CNI_CONF=$CNI_CONF: no such file"
# The values go into a JSON string and a sed replacement: refuse what would break either.
for v in NODE_NAME ETCD_ENDPOINTS; do
  eval "val=\$$v"
  case "$val" in
    *'"'* | *'\'* | *'|'* | *'&'* | *' '*) fail "$v=$val: contains a character not allowed here (\" \\ | & or a space)" ;;
  esac
done

mkdir -p "$CNI_BIN_DIR" "$CNI_NET_DIR/tortie-tls"

# install SRC DEST MODE: copy under a temporary name, then rename over DEST.
install_file() {
  tmp="$(dirname "$2")/.$(basename "$2").tortie-tmp"
  cp "$1" "$tmp" || fail "cannot copy $1 to $tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$2" || fail "cannot rename $tmp to $2"
}

install_file "$TORTIE" "$CNI_BIN_DIR/tortie-cni" 0755
echo "install-cni: installed $CNI_BIN_DIR/tortie-cni"

chmod 0700 "$CNI_NET_DIR/tortie-tls"
for f in ETCD_CA_CERT:etcd-ca ETCD_CERT:etcd-cert ETCD_KEY:etcd-key; do
  eval "src=\$${f%%:*}"
  [ -s "$src" ] || fail "${f%%:*}=$src: missing or empty (is the Secret tortie-etcd mounted?)"
  install_file "$src" "$CNI_NET_DIR/tortie-tls/${f#*:}" 0600
done
echo "install-cni: installed etcd TLS files in $CNI_NET_DIR/tortie-tls"

conf="$CNI_NET_DIR/$(basename "$CNI_CONF")"
tmp="$CNI_NET_DIR/.$(basename "$CNI_CONF").tortie-tmp"
endpoints="$(echo "$ETCD_ENDPOINTS" | sed 's/,/","/g')"
sed -e "s|__NODE_NAME__|$NODE_NAME|g" -e "s|__ETCD_ENDPOINTS__|$endpoints|g" "$CNI_CONF" >"$tmp" ||
  fail "cannot write $tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$conf" || fail "cannot rename $tmp to $conf"
echo "install-cni: installed $conf"
