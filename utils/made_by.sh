# Sourced by steps/*.sh:  . made_by.sh
# made <marker> <options> <input>...: true when <marker> (<output>.made_by) records these options
# and these inputs' fingerprints (python -m sid.bin.made_by, sid.provenance.step_record): the
# output is up to date. Otherwise it says what changed, removes the stale record and is false;
# the step then makes the output again and records it with `made_done <marker>`.
made() {
  local rc=0
  python -m sid.bin.made_by --what="$0" "$@" || rc=$?
  case $rc in
    0) return 0 ;;
    3) return 1 ;;
    *) exit $rc ;;
  esac
}

made_done() {
  mv -f "$1.new" "$1"
}
