# Helpers shared by the load scripts (sourced, not run): loadtest/run.sh,
# loadtest/baseline.sh and services/introspection/testdata/loadtest.sh.

# free_port prints a loopback TCP port nothing listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

# cpu_ticks prints a process's user + system CPU time in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
