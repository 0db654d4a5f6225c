#!/bin/sh
# tests/run/prog_script.sh - a script: what it runs is known only at run time.
echo "pid=$$"
for v in LD_PRELOAD FLIGHTREC_DIR FLIGHTREC_STALL_MS FLIGHTREC_SIGNAL; do
    eval "val=\${$v-(unset)}"
    echo "$v=$val"
done
m=""
grep -q '/libflightrec-uv\.so' /proc/$$/maps && m="${m}uv,"
grep -q '/libflightrec-event\.so' /proc/$$/maps && m="${m}event,"
echo "mapped=$m"
[ "$1" = exit ] && exit "$2"
[ "$1" = kill ] && kill -"$2" $$
exit 0
