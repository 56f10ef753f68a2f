#!/usr/bin/env bash
# Times a command that reads the file set IN and writes OUT against `cp -r IN OUT`,
# in turn (cp, command, cp, command, ...), ROUNDS times, and prints every round,
# the medians and the median of the per-round ratios. Page caches are dropped
# before every run when the caller may do so (root); otherwise a warning says
# that the figures include warm caches. Peak anonymous memory comes from
# bench/peak_anon.sh.
#
#     bash bench/vs_cp.sh 3 big/ out/ -- ndprune prune big/ out/ --method global --amount 0.5 --remove
set -euo pipefail
if [ $# -lt 5 ] || [ "$4" != "--" ]; then
  echo "usage: bash bench/vs_cp.sh ROUNDS IN OUT -- COMMAND [ARG ...]" >&2
  exit 2
fi
rounds=$1 in=$2 out=$3
shift 4
here=$(cd "$(dirname "$0")" && pwd)
[ -e "$in" ] || { echo "no such input: $in" >&2; exit 2; }
[ -e "$out" ] && { echo "$out exists; it would be deleted between runs, so give a new path" >&2; exit 2; }

drop() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then
    echo 3 >/proc/sys/vm/drop_caches
  elif [ -z "${warned:-}" ]; then
    echo "warning: cannot drop page caches (not root): runs may read from memory" >&2
    warned=1
  fi
}

# Runs one command under peak_anon.sh; prints "SECONDS MIB".
timed() {
  rm -rf "$out"
  drop
  local line
  line=$(bash "$here/peak_anon.sh" "$@" 2>&1 >/dev/null | tail -n 1)
  case "$line" in
    "exit 0, "*) ;;
    *) echo "run failed: $* -> $line" >&2; exit 1 ;;
  esac
  echo "$line" | sed -E 's/^exit 0, ([0-9.]+) s, peak RssAnon ([0-9.]+) MiB$/\1 \2/'
}

bytes=$(du -sb "$in" | cut -f1)
echo "input: $in, $bytes bytes; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%-6s %10s %10s %8s %14s\n' round "cp s" "cmd s" ratio "cmd MiB anon"
cps=() cmds=() ratios=() mibs=()
for r in $(seq 1 "$rounds"); do
  read -r c _ < <(timed cp -r "$in" "$out")
  read -r t m < <(timed "$@")
  ratio=$(echo "scale=3; $t / $c" | bc)
  cps+=("$c") cmds+=("$t") ratios+=("$ratio") mibs+=("$m")
  printf '%-6s %10s %10s %8s %14s\n' "$r" "$c" "$t" "$ratio" "$m"
done
rm -rf "$out"
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
printf '%-6s %10s %10s %8s %14s\n' median "$(median "${cps[@]}")" "$(median "${cmds[@]}")" "$(median "${ratios[@]}")" "max $(max "${mibs[@]}")"
echo "throughput (median): cp $(echo "scale=1; $bytes / $(median "${cps[@]}") / 1000000" | bc) MB/s, command $(echo "scale=1; $bytes / $(median "${cmds[@]}") / 1000000" | bc) MB/s"
