#!/bin/sh
# Removes what deploy/install.sh installed (same DESTDIR and PREFIX). The
# configuration (/etc/cri-adapter, /etc/crictl.yaml) and the state
# (/var/lib/cri-adapter, /run/cri-adapter) stay unless --purge is given.
# Pods keep running under containerd's shims; remove them first
# (crictl rmp -fa) if the node is being emptied.
set -eu

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
APP="$PREFIX/lib/cri-adapter"
PURGE=no
[ "${1:-}" = "--purge" ] && PURGE=yes

if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now cri-adapter.service 2>/dev/null || true
fi
rm -f "${DESTDIR}${UNIT_DIR}/cri-adapter.service" "${DESTDIR}${PREFIX}/bin/cri-adapter"
rm -rf "${DESTDIR}${APP}"
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
if [ "$PURGE" = yes ]; then
  rm -rf "${DESTDIR}/etc/cri-adapter" "${DESTDIR}/var/lib/cri-adapter" "${DESTDIR}/run/cri-adapter"
  # crictl.yaml only if it is still the one we shipped.
  if [ -f "${DESTDIR}/etc/crictl.yaml" ] && grep -q cri-adapter.sock "${DESTDIR}/etc/crictl.yaml"; then rm -f "${DESTDIR}/etc/crictl.yaml"; fi
  echo "removed cri-adapter, its configuration and its state"
else
  echo "removed cri-adapter; kept /etc/cri-adapter and /var/lib/cri-adapter (--purge removes them)"
fi
