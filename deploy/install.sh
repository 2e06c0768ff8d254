#!/bin/sh
# Installs a built cri-adapter onto this node (or into a staging root):
#   npm ci && npm run build && sudo deploy/install.sh
# Honours DESTDIR (staging root, default empty) and PREFIX (default /usr/local):
#   $PREFIX/lib/cri-adapter      the program: dist/, package.json, production node_modules
#   $PREFIX/bin/cri-adapter      a wrapper that runs it with this node's Node.js
#   /etc/systemd/system/cri-adapter.service, /etc/cri-adapter/config.json, /etc/crictl.yaml
# Existing config.json and crictl.yaml are kept (the new ones go next to them as *.new).
# NODE names the Node.js binary the unit runs (default: the node on PATH).
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
NODE=${NODE:-$(command -v node || true)}
APP="$PREFIX/lib/cri-adapter"
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
CONF_DIR=/etc/cri-adapter

die() { echo "install.sh: $*" >&2; exit 1; }

[ -n "$NODE" ] || die "no node on PATH; set NODE=/path/to/node (Node.js 20 or later)"
[ -f "$SRC/dist/src/main.js" ] || die "no build in $SRC/dist: run npm ci && npm run build first"
[ -f "$SRC/package-lock.json" ] || die "no package-lock.json in $SRC"
case "$PREFIX" in /*) ;; *) die "PREFIX must be an absolute path (got $PREFIX)";; esac

echo "installing cri-adapter into ${DESTDIR}${APP}"
rm -rf "${DESTDIR}${APP}.tmp"
mkdir -p "${DESTDIR}${APP}.tmp"
cp -r "$SRC/dist" "$SRC/package.json" "$SRC/package-lock.json" "${DESTDIR}${APP}.tmp/"
[ -f "$SRC/README.md" ] && cp "$SRC/README.md" "${DESTDIR}${APP}.tmp/"
# Tests and benchmarks are not part of the program.
rm -rf "${DESTDIR}${APP}.tmp/dist/test"
# Production dependencies only, exactly as the lockfile pins them; no install scripts run.
(cd "${DESTDIR}${APP}.tmp" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error)
rm -rf "${DESTDIR}${APP}"
mv "${DESTDIR}${APP}.tmp" "${DESTDIR}${APP}"
chmod 755 "${DESTDIR}${APP}/dist/src/main.js"

mkdir -p "${DESTDIR}${PREFIX}/bin"
# The daemon's Node flags, from main.js's first line ("#!/usr/bin/env -S node FLAGS").
NODE_FLAGS=$(head -n 1 "${DESTDIR}${APP}/dist/src/main.js" | sed -n 's|^#!.*[ /]node *||p')
cat > "${DESTDIR}${PREFIX}/bin/cri-adapter" <<WRAPPER
#!/bin/sh
exec "$NODE" $NODE_FLAGS "$APP/dist/src/main.js" "\$@"
WRAPPER
chmod 755 "${DESTDIR}${PREFIX}/bin/cri-adapter"

mkdir -p "${DESTDIR}${UNIT_DIR}"
sed -e "s|/usr/bin/node --max-semi-space-size=2 /opt/cri-adapter/dist/src/main.js|$PREFIX/bin/cri-adapter|" \
    -e "s|file:///opt/cri-adapter/README.md|file://$APP/README.md|" \
    "$SRC/deploy/cri-adapter.service" > "${DESTDIR}${UNIT_DIR}/cri-adapter.service"
chmod 644 "${DESTDIR}${UNIT_DIR}/cri-adapter.service"

# Config files are the operator's once installed: never overwritten.
keep_or_install() { # source target
  if [ -e "$2" ]; then
    cp "$1" "$2.new"
    echo "kept existing $2 (the shipped one is $2.new)"
  else
    cp "$1" "$2"
  fi
}
mkdir -p "${DESTDIR}${CONF_DIR}" "${DESTDIR}${CONF_DIR}/certs.d"
keep_or_install "$SRC/deploy/config.example.json" "${DESTDIR}${CONF_DIR}/config.json"
keep_or_install "$SRC/deploy/crictl.yaml" "${DESTDIR}/etc/crictl.yaml"

echo "installed: ${DESTDIR}${PREFIX}/bin/cri-adapter, ${DESTDIR}${UNIT_DIR}/cri-adapter.service, ${DESTDIR}${CONF_DIR}/config.json"
if [ -z "$DESTDIR" ]; then
  echo "next: cri-adapter doctor --config $CONF_DIR/config.json; then systemctl daemon-reload && systemctl enable --now cri-adapter"
fi
