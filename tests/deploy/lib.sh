# shellcheck shell=bash
# Helpers of the deployment checks (tests/deploy/*.sh), sourced:
#
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     deploy_init
#     check "what is checked" [ "$a" = "$b" ] || problem "why not"
#     deploy_finish
#
# Every check runs to the end and lists all its problems, then the script
# exits 1 if there was any. ctest provides MJQ_SRC (the repository) and
# MJQ_BIN (the mjq binary). No Docker engine is used: the files in docker/
# are read, and what can be run of them (the configuration, the build
# step) is run here.
#
#   deploy_init                    strict mode, $SRC, $BIN, $TMP (removed at exit)
#   problem MSG...                 record a failure (printed at once)
#   ok MSG...                      print "ok: MSG"
#   deploy_finish                  summary line; exit 1 if any problem
#   need CMD [PACKAGE]             fail unless CMD is installed
#   yjson FILE                     the YAML documents of FILE as JSON, one a line
#   df_lines                       docker/Dockerfile as "stage<TAB>INSTR<TAB>args"
#                                  lines (continuations joined, comments dropped)
#   df_stage N                     the lines of stage N (1 = the first FROM)
#   df_apt_packages N              packages apt-get installs in stage N
#   listen_port HOST:PORT          the port of a listen address
#   duration_s TEXT                "30s", "1m30s", "90" as whole seconds

deploy_init()
{
    set -euo pipefail
    SRC=${MJQ_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
    BIN=${MJQ_BIN:-$SRC/build/mjq}
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/mjq-deploy.XXXXXX")
    DEPLOY_PROBLEMS=0
    DEPLOY_OKS=0
    trap 'rm -rf "$TMP"' EXIT
    [ -x "$BIN" ] || {
        echo "FAIL: MJQ_BIN ($BIN) is not the mjq binary (ctest sets it)" >&2
        exit 1
    }
}

problem()
{
    echo "FAIL: $*" >&2
    DEPLOY_PROBLEMS=$((DEPLOY_PROBLEMS + 1))
}

ok()
{
    echo "ok: $*"
    DEPLOY_OKS=$((DEPLOY_OKS + 1))
}

deploy_finish()
{
    echo "$DEPLOY_OKS passed, $DEPLOY_PROBLEMS failed"
    [ "$DEPLOY_PROBLEMS" -eq 0 ]
}

need()
{
    command -v "$1" >/dev/null 2>&1 || {
        echo "FAIL: $1 is not installed (Debian package ${2:-$1};" \
            "scripts/setup.sh installs it)" >&2
        exit 1
    }
}

yjson()
{
    yq -c . "$1"
}

df_lines()
{
    awk '
        /^[ \t]*#/ { next }
        {
            buf = cont ? buf " " $0 : $0
            if (buf ~ /\\[ \t]*$/) {
                sub(/\\[ \t]*$/, "", buf)
                cont = 1
                next
            }
            cont = 0
            gsub(/[ \t]+/, " ", buf)
            sub(/^ /, "", buf)
            sub(/ $/, "", buf)
            if (buf == "")
                next
            n = index(buf, " ")
            instr = toupper(n ? substr(buf, 1, n - 1) : buf)
            args = n ? substr(buf, n + 1) : ""
            if (instr == "FROM")
                stage++
            print stage "\t" instr "\t" args
        }' "$SRC/docker/Dockerfile"
}

df_stage()
{
    df_lines | awk -F'\t' -v s="$1" '$1 == s'
}

# Words after "apt-get install" up to the next "&&", without options.
df_apt_packages()
{
    df_stage "$1" | awk -F'\t' '$2 == "RUN" { print $3 }' |
        grep -oE 'apt-get install [^&]*' |
        sed 's/^apt-get install //' | tr ' ' '\n' | grep -vE '^(-|$)' || true
}

listen_port()
{
    echo "${1##*:}"
}

duration_s()
{
    local t=$1 total=0 n unit
    [[ $t =~ ^[0-9]+$ ]] && {
        echo "$t"
        return
    }
    while [[ $t =~ ^([0-9]+)(h|m|s)(.*)$ ]]; do
        n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} t=${BASH_REMATCH[3]}
        case $unit in
        h) total=$((total + n * 3600)) ;;
        m) total=$((total + n * 60)) ;;
        s) total=$((total + n)) ;;
        esac
    done
    [ -z "$t" ] || {
        echo -1
        return
    }
    echo "$total"
}
