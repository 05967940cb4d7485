# Sourced by steps/*.sh and the recipes' run.sh:  . lock_dirs.sh; lock_dirs <dir>...
# (and unlock_dirs <dir>... where a script is done with a dir before it ends).
# Takes an exclusive lock (flock) on each directory for the rest of the calling script, so
# two runs on the same data/exp dirs cannot interleave: the second one waits, saying who
# holds the lock, and goes on once it is free (finding the first run's finished work), or
# with SID_LOCK_WAIT=false stops with that message instead. The lock file is
# <parent>/.<dir>.lock beside the directory, so a step may replace the directory itself.
# The lock is released when the script ends (its programs inherit it, so a job still running
# after its script was killed keeps it). Directories already locked by a calling script
# (SID_LOCKED) are skipped: a step run by a locked recipe does not wait for itself.
lock_dirs() {
  local d lock fd owner dirs
  declare -gA _sid_lock_fd
  # In one order everywhere (sorted absolute paths), so two steps never hold one lock each
  # while waiting for the other's. Links are kept as given (not resolved).
  mapfile -t dirs < <(for d in "$@"; do realpath -ms -- "$d"; done | LC_ALL=C sort -u)
  for d in "${dirs[@]}"; do
    case ":${SID_LOCKED:-}:" in *":$d:"*) continue ;; esac
    lock=$(dirname "$d")/.$(basename "$d").lock
    mkdir -p "$(dirname "$d")" || return 1
    exec {fd}>>"$lock" || return 1
    if ! flock -n "$fd"; then
      owner=$(cat "$lock" 2>/dev/null)
      if [ "${SID_LOCK_WAIT:-true}" = false ]; then
        echo "$0: $d is in use by another run (${owner:-unknown}); stopping (SID_LOCK_WAIT=false)." >&2
        echo "$0: wait for that run to end, or stop it, then rerun" >&2
        exit 1
      fi
      echo "$0: $d is in use by another run (${owner:-unknown}); waiting for it to end" >&2
      flock "$fd"
      echo "$0: $d is free; going on" >&2
    fi
    echo "$0 (pid $$ on $(hostname), since $(date '+%F %T'))" > "$lock"
    export SID_LOCKED="${SID_LOCKED:+$SID_LOCKED:}$d"
    _sid_lock_fd[$d]=$fd
  done
}

unlock_dirs() {
  local d fd
  for d in "$@"; do
    d=$(realpath -ms -- "$d")
    fd=${_sid_lock_fd[$d]:-}
    [ -n "$fd" ] || continue
    flock -u "$fd"
    exec {fd}>&-
    unset "_sid_lock_fd[$d]"
    SID_LOCKED=$(echo ":$SID_LOCKED:" | sed "s|:$d:|:|; s|^:||; s|:$||")
  done
}
