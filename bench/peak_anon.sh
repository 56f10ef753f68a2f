#!/usr/bin/env bash
# Runs a command and reports its wall time and its peak anonymous memory
# (RssAnon of /proc/PID/status, sampled every 20 ms: memory the program
# allocated, not the pages of files it maps, which the kernel can drop).
#
#     bash bench/peak_anon.sh ndprune prune big/ out/ --method global --amount 0.5 --remove
set -euo pipefail
start=$(date +%s.%N)
"$@" &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
  kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  if [ -n "$kb" ] && [ "$kb" -gt "$peak" ]; then peak=$kb; fi
  sleep 0.02
done
wait "$pid"; rc=$?
end=$(date +%s.%N)
printf 'exit %s, %.1f s, peak RssAnon %.1f MiB\n' "$rc" "$(echo "$end - $start" | bc)" "$(echo "$peak / 1024" | bc -l)" >&2
exit "$rc"
