#!/usr/bin/env bash
# ctest-timeout: 900
# docker/Dockerfile without a Docker engine:
#   - its shape: two debian:bookworm-slim stages, a numeric non-root USER
#     created in the image, `mjq run` as the ENTRYPOINT (PID 1, no init),
#     MJQ_CONFIG and MJQ_HTTP_LISTEN, STOPSIGNAL SIGTERM, a HEALTHCHECK, the
#     binary copied from the build stage, no -dev package at run time;
#   - the build context: every COPY source exists and .dockerignore lets
#     it through; the build stage installs the -dev package of every
#     pkg-config module CMakeLists.txt requires;
#   - the build: the build stage's cmake RUN step runs on a copy of
#     exactly the files its COPY lines take (Release, no tests);
#   - the runtime libraries: every shared library that binary links (ldd)
#     belongs (dpkg -S) to a package the runtime stage installs, or to one
#     of their dependencies, or to a Priority: required package (those are
#     in debian:bookworm-slim). This machine is Debian 12 like the image.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
deploy_init
need dpkg-query dpkg
need ldd libc-bin
need cmake

stages=$(df_lines | awk -F'\t' 'END { print $1 }')
last=$stages
instr() { df_stage "$1" | awk -F'\t' -v i="$2" '$2 == i { print $3 }'; }

# --- shape ------------------------------------------------------------------------
froms=$(df_lines | awk -F'\t' '$2 == "FROM" { print $3 }')
if [ "$stages" = 2 ] && [ "$(sed -n 1p <<<"$froms")" = "debian:bookworm-slim AS build" ] &&
    [ "$(sed -n 2p <<<"$froms")" = debian:bookworm-slim ]; then
    ok "two stages on debian:bookworm-slim (build, runtime)"
else
    problem "stages: want 'debian:bookworm-slim AS build' then 'debian:bookworm-slim', got: $(xargs <<<"$froms")"
fi
user=$(instr "$last" USER | tail -n 1)
uid=${user%%:*} gid=${user#*:}
if [[ $user =~ ^[1-9][0-9]*:[1-9][0-9]*$ ]] &&
    instr "$last" RUN | grep -qE "useradd .*--uid $uid( |$)" &&
    instr "$last" RUN | grep -qE "groupadd .*--gid $gid( |$)"; then
    ok "USER $user: numeric, non-root, created in the image"
else
    problem "USER '$user': want numeric non-zero uid:gid, created by useradd/groupadd in the runtime stage"
fi
entry=$(instr "$last" ENTRYPOINT | tr -d ' ')
[ "$entry" = '["/usr/local/bin/mjq","run"]' ] && ok "ENTRYPOINT mjq run (exec form: PID 1)" ||
    problem "ENTRYPOINT $entry: want [\"/usr/local/bin/mjq\", \"run\"]"
df_lines | grep -qiE 'tini|dumb-init' &&
    problem "an init in front of mjq: mjq run reaps children and handles SIGTERM itself"
envs=$(instr "$last" ENV | tr ' ' '\n')
grep -qE '^MJQ_CONFIG=/' <<<"$envs" && grep -qE '^MJQ_HTTP_LISTEN=[^ ]*:[0-9]+$' <<<"$envs" &&
    ok "ENV MJQ_CONFIG and MJQ_HTTP_LISTEN" ||
    problem "ENV: want MJQ_CONFIG=/... and MJQ_HTTP_LISTEN=HOST:PORT, got: $(xargs <<<"$envs")"
[ "$(instr "$last" STOPSIGNAL)" = SIGTERM ] && ok "STOPSIGNAL SIGTERM" ||
    problem "STOPSIGNAL '$(instr "$last" STOPSIGNAL)': want SIGTERM"
instr "$last" HEALTHCHECK | grep -q 'CMD' && ok "HEALTHCHECK" || problem "no HEALTHCHECK"
bin_copy=$(instr "$last" COPY | grep -E '^--from=build ' || true)
bin_from=$(awk '{ print $2 }' <<<"$bin_copy")
[ "$(awk '{ print $3 }' <<<"$bin_copy")" = /usr/local/bin/mjq ] && [ -n "$bin_from" ] &&
    ok "the binary comes from the build stage ($bin_from)" ||
    problem "no COPY --from=build ... /usr/local/bin/mjq"
RUNTIME_PKGS=$(df_apt_packages "$last")
dev=$(grep -E -- '-dev$' <<<"$RUNTIME_PKGS" || true)
[ -z "$dev" ] && ok "no -dev package at run time" || problem "-dev packages at run time: $(xargs <<<"$dev")"
grep -qx ca-certificates <<<"$RUNTIME_PKGS" && ok "ca-certificates at run time" ||
    problem "no ca-certificates at run time (https:// upstreams)"

# --- the build context -----------------------------------------------------------
ignore=$SRC/.dockerignore
if [ ! -f "$ignore" ]; then
    problem "no .dockerignore"
else
    first=$(grep -vE '^(#|$)' "$ignore" | head -n 1)
    [ "$first" = '*' ] || problem ".dockerignore: want '*' first (an allow-list), got '$first'"
fi
let_through() # PATH: re-included by a "!" line of .dockerignore
{
    local p
    while read -r p; do
        p=${p#!}
        p=${p%/}
        [ "$1" = "$p" ] || [[ $1 == "$p"/* ]] && return 0
    done < <(grep -E '^!' "$ignore" 2>/dev/null)
    return 1
}
bad=0
while read -r stage args; do
    for s in $(awk '{ $NF = ""; print }' <<<"$args"); do
        if [ ! -e "$SRC/$s" ]; then
            problem "stage $stage: COPY $s: no such file in the repository"
            bad=1
        elif ! let_through "$s"; then
            problem "stage $stage: COPY $s: excluded by .dockerignore"
            bad=1
        fi
    done
done < <(df_lines | awk -F'\t' '$2 == "COPY" && $3 !~ /^--/ { print $1, $3 }')
[ "$bad" = 1 ] || ok "every COPY source exists and .dockerignore lets it through"

BUILD_PKGS=$(df_apt_packages 1)
bad=0
for mod in $(sed -n 's/.*pkg_check_modules([A-Z_]* REQUIRED IMPORTED_TARGET \([^)]*\)).*/\1/p' \
    "$SRC/CMakeLists.txt"); do
    pc=$(pkg-config --variable=pcfiledir "$mod" 2>/dev/null)/$mod.pc
    pkg=$(dpkg -S "$pc" 2>/dev/null | head -n 1 | cut -d: -f1)
    if [ -z "$pkg" ]; then
        problem "pkg-config module $mod: no Debian package owns $pc here"
        bad=1
    elif ! grep -qx "$pkg" <<<"$BUILD_PKGS"; then
        problem "the build stage does not install $pkg (pkg-config $mod, CMakeLists.txt)"
        bad=1
    fi
done
for tool in cmake pkg-config; do
    grep -qx "$tool" <<<"$BUILD_PKGS" || {
        problem "the build stage does not install $tool"
        bad=1
    }
done
grep -qxE 'build-essential|gcc' <<<"$BUILD_PKGS" || {
    problem "the build stage installs no C compiler"
    bad=1
}
[ "$bad" = 1 ] || ok "the build stage installs the -dev package of every pkg-config module"

# --- the build, on a copy of what the COPY lines take ------------------------------
ROOT=$TMP/root
workdir=/
while IFS=$'\t' read -r _ ins args; do
    case $ins in
    WORKDIR)
        workdir=$args
        mkdir -p "$ROOT$workdir"
        ;;
    COPY)
        [[ $args == --* ]] && continue
        read -r -a parts <<<"$args"
        dest=${parts[-1]}
        [[ $dest == /* ]] || dest=$workdir/$dest
        for s in "${parts[@]:0:${#parts[@]}-1}"; do
            if [ -d "$SRC/$s" ]; then
                mkdir -p "$ROOT$dest"
                cp -a "$SRC/$s/." "$ROOT$dest/"
            elif [[ $dest == */ || -d "$ROOT$dest" ]]; then
                mkdir -p "$ROOT$dest"
                cp -a "$SRC/$s" "$ROOT$dest/"
            else
                mkdir -p "$(dirname "$ROOT$dest")"
                cp -a "$SRC/$s" "$ROOT$dest"
            fi
        done
        ;;
    RUN)
        # Only the build step itself (it starts with cmake): never the
        # apt-get steps, which the package checks cover.
        [[ $args == "cmake "* ]] || continue
        echo "running the build stage's step in $ROOT$workdir: $args"
        if ! (cd "$ROOT$workdir" && nice -n 10 bash -euo pipefail -c "$args") \
            >"$TMP/build.log" 2>&1; then
            tail -n 30 "$TMP/build.log" >&2
            problem "the build stage's cmake step fails on the files its COPY lines take"
        fi
        ;;
    esac
done < <(df_stage 1)
BUILT=$ROOT$bin_from
if [ -x "$BUILT" ]; then
    ok "the build stage builds ${bin_from} from what it copies"
    if "$BUILT" --version >/dev/null &&
        "$BUILT" config --config "$SRC/conf/mjq.conf" >/dev/null; then
        ok "the built binary runs (mjq --version, mjq config)"
    else
        problem "the built binary does not run"
    fi
else
    problem "the build stage leaves no binary at $bin_from"
    deploy_finish
    exit 1
fi

# --- runtime libraries -> packages the runtime stage installs ---------------------
deps_of() # PACKAGE: its Depends and Pre-Depends, first alternative, one a line
{
    local d
    d=$(dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$1" 2>/dev/null) ||
        d=$(apt-cache show --no-all-versions "$1" 2>/dev/null |
            sed -n 's/^\(Pre-\)\{0,1\}Depends: //p' | paste -sd, -)
    tr ',' '\n' <<<"$d" | sed 's/|.*//; s/(.*//; s/:any//; s/[[:space:]]//g' |
        grep -v '^$' || true
}
declare -A CLOSURE=()
queue=()
for p in $RUNTIME_PKGS; do
    if ! dpkg-query -W "$p" >/dev/null 2>&1 &&
        ! apt-cache show --no-all-versions "$p" >/dev/null 2>&1; then
        problem "runtime stage: no Debian package named $p"
        continue
    fi
    queue+=("$p")
done
while [ "${#queue[@]}" -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    [ -n "${CLOSURE[$p]:-}" ] && continue
    CLOSURE[$p]=1
    for d in $(deps_of "$p"); do
        [ -n "${CLOSURE[$d]:-}" ] || queue+=("$d")
    done
done

# One dpkg -S for every spelling of every library (usrmerge: /lib and
# /usr/lib, the name ldd prints and the file it resolves to).
libs=$(ldd "$BUILT" | awk '/=>/ { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
declare -A OWNER=()
while IFS= read -r line; do
    OWNER[${line#*: }]=$(cut -d: -f1 <<<"$line")
done < <(for f in $libs; do
    r=$(readlink -f "$f")
    printf '%s\n' "$f" "/usr$f" "${f#/usr}" "$r" "/usr$r" "${r#/usr}"
done | sort -u | xargs dpkg -S 2>/dev/null || true)
owner() # a library path -> its package
{
    local f=$1 r c
    r=$(readlink -f "$f")
    for c in "$f" "/usr$f" "${f#/usr}" "$r" "/usr$r" "${r#/usr}"; do
        [ -n "${OWNER[$c]:-}" ] && echo "${OWNER[$c]}" && return 0
    done
    return 1
}
bad=0
[ -n "$libs" ] || problem "ldd found no library in $BUILT"
for lib in $libs; do
    pkg=$(owner "$lib") || {
        problem "$lib: no Debian package owns it"
        bad=1
        continue
    }
    if [ -n "${CLOSURE[$pkg]:-}" ]; then
        how=$(grep -qx "$pkg" <<<"$RUNTIME_PKGS" && echo installed || echo "a dependency")
    elif [ "$(dpkg-query -W -f='${Priority}' "$pkg" 2>/dev/null)" = required ]; then
        how="in the base image (Priority: required)"
    else
        problem "$(basename "$lib") comes from $pkg, which the runtime stage does not install"
        bad=1
        continue
    fi
    echo "  $(basename "$lib") <- $pkg ($how)"
done
[ "$bad" = 1 ] || ok "every shared library of the binary comes with the runtime stage's packages ($(wc -w <<<"$libs") libraries)"

deploy_finish
