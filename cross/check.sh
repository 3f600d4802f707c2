#!/usr/bin/env bash
# Checks a release binary: fully static (no interpreter), stripped, and within the size
# budget. Prints one line; exits 1 if the binary is not static or not stripped, or is over
# the hard limit: 1.35 MiB for aarch64 (the product's budget for the Pi and the routers that
# run it; the default build leaves HTTPS serving out to stay within), 2 MiB for the others.
# Over the aim only warns.
# usage: cross/check.sh BINARY     (XRELAY_SIZE_AIM / XRELAY_SIZE_LIMIT in bytes override)
set -euo pipefail
bin=${1:?usage: cross/check.sh BINARY}
aim=${XRELAY_SIZE_AIM:-1572864}     # 1.5 MiB: the goal for aarch64 with everything in
info=$(file -b "$bin")
case $info in
*aarch64*) default_limit=1415577 ;; # 1.35 MiB
*) default_limit=2097152 ;;         # 2 MiB: never above
esac
limit=${XRELAY_SIZE_LIMIT:-$default_limit}

size=$(stat -c %s "$bin")
mib=$(awk -v s="$size" 'BEGIN {printf "%.2f", s / 1048576}')
problems=()
case $info in
*"statically linked"* | *"static-pie linked"*) ;;
*) problems+=("not static") ;;
esac
case $info in *interpreter*) problems+=("has an interpreter") ;; esac
case $info in *", stripped"*) ;; *) problems+=("not stripped") ;; esac
[ "$size" -le "$limit" ] || problems+=("over the $limit B limit")

line=$(printf '%9s B  %s MiB  %s' "$size" "$mib" "$(echo "$info" | cut -d, -f1-2)")
if [ ${#problems[@]} -gt 0 ]; then
    echo "FAIL $line: $(IFS=,; echo "${problems[*]}")"
    exit 1
fi
if [ "$size" -gt "$aim" ]; then
    echo "ok   $line (over the $aim B aim)"
else
    echo "ok   $line"
fi
