#!/bin/sh
# Fan-out: one process connects to many distinct IP addresses within seconds, as
# a scanner or a worm does. Every address is a loopback one (127.0.0.1 to
# 127.0.0.N, port 9, where nothing listens): no packet leaves the container.
# Usage: sh attack.sh [N]    (default 60; the correlation needs 50 within a minute)
set -u
n=${1:-60}
urls=""
for i in $(seq 1 "$n"); do
  urls="$urls http://127.0.0.$i:9/"
done
# curl goes on to the next URL when one is refused
# shellcheck disable=SC2086
curl -s -m 1 $urls || true
echo "ip-fanout: done (expect one 'Container fans out to many IPs')"
