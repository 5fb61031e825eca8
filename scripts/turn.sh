#!/usr/bin/env bash
# A TURN relay for a coordinator's peers: coturn (scripts/setup.sh installs it) with the TURN REST
# shared-secret scheme. The coordinator is given the same secret (SWARM_TURN_SECRET) and hands each
# peer a credential that expires (coordinator/turn-credentials.ts); no password is ever stored in
# the app, and the relay keeps no list of users. Runs in the foreground; Ctrl-C stops it.
#
#   TURN_SECRET=… scripts/turn.sh [--port 3478] [--listen 0.0.0.0] [--relay IP] [--external PUBLIC_IP]
#                                 [--realm swarm] [--loopback-peers]
#
# --relay is the address relayed traffic leaves from (default: --listen); --external the public
# address behind a 1:1 NAT (a cloud VM). --loopback-peers lets peers on 127.0.0.1 be relayed to
# (tests on one machine); coturn refuses it otherwise, so a peer cannot reach the relay's own host.
set -euo pipefail

port=3478 listen=0.0.0.0 relay="" external="" realm=swarm loopback=0
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --listen) listen="$2"; shift 2 ;;
    --relay) relay="$2"; shift 2 ;;
    --external) external="$2"; shift 2 ;;
    --realm) realm="$2"; shift 2 ;;
    --loopback-peers) loopback=1; shift ;;
    *) echo "turn.sh: unknown option $1 (see the comment at the top of scripts/turn.sh)" >&2; exit 2 ;;
  esac
done
if [ -z "${TURN_SECRET:-}" ]; then
  echo "turn.sh: set TURN_SECRET to the secret the coordinator shares (SWARM_TURN_SECRET); it is never passed on a command line" >&2
  exit 2
fi
if ! command -v turnserver >/dev/null 2>&1; then
  echo "turn.sh: coturn is not installed: run bash scripts/setup.sh" >&2
  exit 2
fi

# The secret goes in a file only this user reads, not on turnserver's command line (ps shows those).
conf="$(mktemp -t turnserver-XXXXXX.conf)"
trap 'rm -f "$conf"' EXIT
chmod 600 "$conf"
{
  echo "listening-port=$port"
  [ "$listen" != "0.0.0.0" ] && echo "listening-ip=$listen"
  echo "relay-ip=${relay:-$listen}"
  [ -n "$external" ] && echo "external-ip=$external"
  echo "use-auth-secret"
  echo "static-auth-secret=$TURN_SECRET"
  echo "realm=$realm"
  echo "fingerprint"
  echo "no-cli"
  echo "no-tls"
  echo "no-dtls"
  echo "no-multicast-peers"
  echo "no-software-attribute"
  echo "min-port=49160"
  echo "max-port=49999"
  echo "simple-log"
  echo "pidfile=${conf%.conf}.pid"
  echo "log-file=stdout"
  [ "$loopback" -eq 1 ] && echo "allow-loopback-peers"
} >"$conf"
echo "turn.sh: coturn relaying on $listen:$port (realm $realm)"
turnserver -c "$conf" &
child=$!
trap 'kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; rm -f "$conf"' EXIT INT TERM
wait "$child"
