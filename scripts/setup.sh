#!/usr/bin/env bash
# Installs the system packages the project needs on Debian bookworm:
#  - Mesa's lavapipe (Vulkan on the CPU) new enough for Dawn, from bookworm-backports
#    (bookworm's own Mesa 22.3 lacks features Dawn requires);
#  - the system Chromium, driven by Playwright for the browser tests (Playwright cannot
#    download its own browser here);
#  - a C++ toolchain and Python for node-gyp: better-sqlite3 (the coordinator's store) builds from
#    source when its prebuilt binary cannot be downloaded;
#  - the networks of the internet tests: coturn (the TURN relay, scripts/turn.sh), openssl (the
#    certificates of a test CA), nftables (NAT routers in network namespaces).
# Idempotent and quiet when everything is already in place.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { printf '[setup] %s\n' "$*"; }

mesa_major() {
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/' || true
}

need_mesa=1
major="$(mesa_major)"
if [ -n "$major" ] && [ "$major" -ge 23 ] && ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  need_mesa=0
fi
need_chromium=1
if command -v chromium >/dev/null 2>&1; then need_chromium=0; fi
need_build=1
if command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then need_build=0; fi

need_net=1
if command -v turnserver >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 && command -v nft >/dev/null 2>&1; then need_net=0; fi

if [ "$need_mesa" -eq 0 ] && [ "$need_chromium" -eq 0 ] && [ "$need_build" -eq 0 ] && [ "$need_net" -eq 0 ]; then
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt_quiet() { $SUDO apt-get -o Dpkg::Use-Pty=0 -qq "$@" >/tmp/swarm-setup-apt.log 2>&1 || { cat /tmp/swarm-setup-apt.log; return 1; }; }

if [ "$need_mesa" -eq 1 ]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding the bookworm-backports suite to apt's sources"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
  fi
fi

log "apt-get update"
apt_quiet update

if [ "$need_mesa" -eq 1 ]; then
  log "installing Mesa lavapipe (Vulkan on the CPU) from bookworm-backports"
  apt_quiet install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1
fi
if [ "$need_chromium" -eq 1 ]; then
  log "installing Chromium"
  apt_quiet install -y chromium
fi
if [ "$need_build" -eq 1 ]; then
  log "installing a C++ toolchain and Python (node-gyp builds better-sqlite3)"
  apt_quiet install -y build-essential python3
fi
if [ "$need_net" -eq 1 ]; then
  log "installing coturn, openssl and nftables (the internet tests' relay, certificates and NAT)"
  apt_quiet install -y coturn openssl nftables
fi
log "done: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers), $(chromium --version 2>/dev/null || echo 'chromium missing')"
