#!/bin/sh
# Container drift: a file that was not in the image is made executable and run.
# Writes only under /tmp/.atelier-drift, which it removes at the end.
# A second file gets mode 0600 (no execute bit): that chmod must not alert.
# Usage: sh attack.sh
set -eu
dir=/tmp/.atelier-drift
mkdir -p "$dir"
printf 'notes of the atelier\n' > "$dir/notes.txt"
chmod 600 "$dir/notes.txt"
printf '#!/bin/sh\necho "drift: this tool was not in the image"\n' > "$dir/tool.sh"
chmod +x "$dir/tool.sh"
"$dir/tool.sh"
rm -rf "$dir"
echo "container-drift: done (expect one 'Container drift by exec bit')"
