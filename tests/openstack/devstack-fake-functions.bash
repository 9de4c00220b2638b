# A FAKE of the few DevStack functions that devstack/plugin.sh and
# devstack/settings use, for tests/openstack/devstack.sh when no DevStack
# checkout is given (DEVSTACK_DIR). DevStack is not packaged by Debian, so
# a clone of vtpmd has no DevStack functions to run its plugin with.
#
# Written from the behaviour of DevStack stable/victoria (tag victoria-eol:
# functions-common, inc/ini-config, doc/source/plugins.rst), not copied
# from it. It is no substitute for the real library: run the test with
# DEVSTACK_DIR=/path/to/devstack (checked out at victoria-eol) to use
# DevStack's own functions; the test's assertions are the same.

DEVSTACK_FAKE=1

# --- stackrc / functions-common globals ---------------------------------
SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
SYSTEMCTL=${SYSTEMCTL:-"sudo systemctl"}

function echo_summary { echo "$@"; }
function err { echo "ERROR: ${1}: ${*:2}" >&2; }
function warn { echo "WARNING: ${1}: ${*:2}" >&2; }

# die LINENO MESSAGE: prints and exits (non-zero).
function die {
    local rc=$?
    [ $rc -eq 0 ] && rc=1
    err "$@"
    exit $rc
}

# trueorfalse DEFAULT VARNAME: True/False from the variable's value.
function trueorfalse {
    local default=$1
    local v=${!2:-}
    case $v in
        1 | [yY]es | YES | [tT]rue | TRUE) echo True ;;
        0 | [nN]o | NO | [fF]alse | FALSE) echo False ;;
        *) echo "$default" ;;
    esac
}

# ENABLED_SERVICES: a comma-separated list.
function is_service_enabled {
    local s
    for s in "$@"; do
        [[ ,${ENABLED_SERVICES}, =~ ,${s}, ]] && return 0
        [[ $s == nova && ,${ENABLED_SERVICES} =~ ,n- ]] && return 0
    done
    return 1
}

function enable_service {
    local s
    for s in "$@"; do
        is_service_enabled "$s" || ENABLED_SERVICES="${ENABLED_SERVICES:+$ENABLED_SERVICES,}$s"
    done
}

function define_plugin { :; }
function plugin_requires { :; }
function time_start { :; }
function time_stop { :; }

# iniset [-sudo] FILE SECTION OPTION VALUE: sets OPTION in [SECTION],
# adding the section (at the end) or the option (right after the section
# header) when missing; creates FILE.
function iniset {
    local sudo=""
    if [ "$1" = -sudo ]; then
        sudo=sudo
        shift
    fi
    local file=$1 section=$2 option=$3 value=$4 tmp mode
    [ -n "$section" ] && [ -n "$option" ] || return 0
    if ! { [ -f "$file" ] && grep -q "^\[$section\]" "$file"; }; then
        printf '\n[%s]\n%s = %s\n' "$section" "$option" "$value" | $sudo tee -a "$file" > /dev/null
        return 0
    fi
    if awk -v s="$section" -v o="$option" '
        /^\[.*\]/ { insec = ($0 == "[" s "]"); next }
        insec && $0 ~ "^" o "[ \t]*=" { found = 1 }
        END { exit !found }' "$file"; then
        mode=replace
    else
        mode=add
    fi
    tmp=$(mktemp)
    awk -v s="$section" -v o="$option" -v v="$value" -v mode=$mode '
        /^\[.*\]/ { insec = ($0 == "[" s "]"); print
                     if (insec && mode == "add") print o " = " v
                     next }
        insec && mode == "replace" && $0 ~ "^" o "[ \t]*=" { print o " = " v; next }
        { print }' "$file" > "$tmp"
    $sudo cp "$tmp" "$file"
    rm -f "$tmp"
}

# iniget FILE SECTION OPTION: the value, or nothing.
function iniget {
    local file=$1 section=$2 option=$3
    [ -f "$file" ] || return 0
    awk -v s="$section" -v o="$option" '
        /^\[.*\]/ { insec = ($0 == "[" s "]"); next }
        insec && $0 ~ "^" o "[ \t]*=" { sub("^" o "[ \t]*=[ \t]*", ""); print; exit }
    ' "$file"
}

function install_package { sudo apt-get install -y "$@"; }

function restart_service { sudo systemctl restart "$1"; }

# run_process NAME COMMAND [GROUP] [USER]: the enabled service NAME runs
# as the systemd unit devstack@NAME.service (User=USER, default
# $STACK_USER; Group=GROUP), enabled and started.
function run_process {
    local name=$1 command=$2 group=${3:-} user=${4:-$STACK_USER}
    is_service_enabled "$name" || return 0
    [[ $command =~ ^/ ]] || die $LINENO "run_process: $command is no absolute path"
    local unit="$SYSTEMD_DIR/devstack@$name.service"
    mkdir -p "$SYSTEMD_DIR"
    iniset -sudo "$unit" Unit Description "Devstack devstack@$name.service"
    iniset -sudo "$unit" Service User "$user"
    iniset -sudo "$unit" Service ExecStart "$command"
    iniset -sudo "$unit" Service KillMode process
    iniset -sudo "$unit" Service TimeoutStopSec 300
    [ -n "$group" ] && iniset -sudo "$unit" Service Group "$group"
    iniset -sudo "$unit" Install WantedBy multi-user.target
    $SYSTEMCTL daemon-reload
    $SYSTEMCTL enable "devstack@$name.service"
    $SYSTEMCTL start "devstack@$name.service"
}

# stop_process NAME: stops and disables devstack@NAME.service.
function stop_process {
    local name=$1
    is_service_enabled "$name" || return 0
    if $SYSTEMCTL is-enabled "devstack@$name.service"; then
        $SYSTEMCTL stop "devstack@$name.service"
        $SYSTEMCTL disable "devstack@$name.service"
    fi
}
