# Usage: . utils/parse_options.sh   (sourced by a script, after its defaults)
#
# Kaldi's option parsing for shell scripts. For every variable the calling
# script has already set, e.g. nj=4 or fbank_config=conf/fbank.conf, the
# options --nj 8, --nj=8, --fbank-config x and --fbank-config=x set it.
#   --config FILE   reads name=value lines (comments with #) first: as in Kaldi,
#                   every other option on the command line wins over a config file,
#                   wherever it stands; but in a script that has its own variable
#                   `config` (the recipes' model YAML), --config sets that variable
#                   like any other option
#   --help          prints the script's $help_message, or else its leading
#                   comment block (the usage header) and the default of each
#                   option the header names, and exits 0
# An option naming no existing variable is an error that names it. Parsing
# stops at the first argument that does not start with --; those are left in
# "$@" for the script.

__sid_usage() {
  if [ -n "${help_message:-}" ]; then
    echo -e "$help_message"
    return
  fi
  # The header: comment lines after the shebang, up to the first other line.
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"
  # Then the value each option it names has now: the script's default.
  local opt var shown=
  for opt in $(sed -n '2,${/^#/!q;p}' "$0" | grep -o -- '--[a-z][a-z0-9-]*' | awk '!seen[$0]++'); do
    var=${opt#--}; var=${var//-/_}
    [ -n "${!var+set}" ] || continue
    [ -n "$shown" ] || { echo; echo "Defaults:"; shown=1; }
    printf '  %-24s %s\n' "$opt" "${!var:-\"\"}"
  done
}

# Config files first, in command-line order, so that the command line overrides them.
if [ -z "${config+set}" ]; then
  __sid_args=("$@")
  for ((__sid_i = 0; __sid_i < ${#__sid_args[@]}; __sid_i++)); do
    __sid_value=
    case "${__sid_args[__sid_i]}" in
      --config=*) __sid_value=${__sid_args[__sid_i]#--config=} ;;
      --config) __sid_value=${__sid_args[__sid_i + 1]-}; __sid_i=$((__sid_i + 1)) ;;
      --help|-h|--*=*) continue ;;
      --*) __sid_i=$((__sid_i + 1)); continue ;;  # its value follows
      *) break ;;
    esac
    if [ ! -r "$__sid_value" ]; then
      echo "$0: cannot read config file '$__sid_value'" >&2; exit 1
    fi
    # shellcheck disable=SC1090
    . "$__sid_value"
  done
  unset __sid_args __sid_i
fi

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) __sid_usage; exit 0 ;;
    --*=*) __sid_name=${1%%=*}; __sid_value=${1#*=}; __sid_shift=1 ;;
    --*)
      if [ $# -lt 2 ]; then
        echo "$0: option $1 needs a value" >&2; exit 1
      fi
      __sid_name=$1; __sid_value=$2; __sid_shift=2 ;;
    *) break ;;
  esac
  __sid_var=$(echo "${__sid_name#--}" | sed 's/-/_/g')
  if [ "$__sid_var" = config ] && [ -z "${config+set}" ]; then
    shift $__sid_shift  # read above
    continue
  fi
  if ! [[ "$__sid_var" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!__sid_var+set}" ]; then
    echo "$0: invalid option $__sid_name (no variable ${__sid_var} in this script; see --help)" >&2
    exit 1
  fi
  # Booleans stay booleans: Kaldi scripts test "$x" == true.
  case "${!__sid_var}" in
    true|false)
      if [ "$__sid_value" != true ] && [ "$__sid_value" != false ]; then
        echo "$0: option $__sid_name expects true or false, got '$__sid_value'" >&2; exit 1
      fi ;;
  esac
  printf -v "$__sid_var" '%s' "$__sid_value"
  shift $__sid_shift
done
unset __sid_name __sid_value __sid_shift __sid_var

# The steps/ scripts, like Kaldi's, pass data, exp, log and feature paths unquoted
# through job runners and rspecifiers: a path with whitespace (given, or from the
# current directory) would break deep inside a job. Stop first, naming it. The utils/
# data-dir tools and sid.bin tools take such paths.
case "$0" in
  steps/*|*/steps/*)
    for __sid_arg in "$@"; do
      case "$__sid_arg" in /*) __sid_path=$__sid_arg ;; *) __sid_path=$PWD/$__sid_arg ;; esac
      if [[ "$__sid_path" =~ [[:space:]] ]]; then
        if [[ "$__sid_arg" =~ [[:space:]] ]]; then __sid_what="'$__sid_arg'"; else __sid_what="'$__sid_arg' (in the current directory '$PWD')"; fi
        echo "$0: $__sid_what: the steps scripts do not support paths with whitespace (nor do Kaldi's);" \
          "rename the directory or reach it through a symbolic link whose path has none" >&2
        exit 1
      fi
    done
    unset __sid_arg __sid_path __sid_what ;;
esac
true
