#!/usr/bin/env bash
# ctest-timeout: 120
# Consistency of docker/Dockerfile, docker/compose.yaml and docker/k8s/
# with mjq itself, without a Docker engine or a cluster:
#   - every MJQ_* name they mention is a variable mjq reads;
#   - the configuration each container would load is valid: the
#     Deployment's environment is evaluated ($(VAR) references, Secret and
#     ConfigMap values, the volumes materialised at their mount paths) and
#     `mjq config` loads it, so MJQ_CONFIG and MJQ_API_KEY_FILE must name
#     mounted files; the same for the image's own config and compose;
#   - the admin port and probe paths agree everywhere (and with mjq's
#     endpoints once they are in the tree);
#   - grace periods exceed worker.shutdown_timeout_s plus the supervisor's
#     kill grace;
#   - securityContext, resources (against docs/benchmarks.md's figures),
#     selectors, Secret and ConfigMap references, the kustomization's
#     resource list, and the KEDA triggers against the configured queues.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
deploy_init
need yq
need jq

K=$SRC/docker/k8s
for f in "$K"/*.yaml; do
    yjson "$f" >"$TMP/$(basename "$f" .yaml).json" ||
        problem "${f#"$SRC"/}: not readable YAML"
done
yjson "$SRC/docker/compose.yaml" >"$TMP/compose.json"
DEP=$TMP/deployment.json
CM=$TMP/configmap.json
SEC=$TMP/secret.example.json
SVC=$TMP/service.json
PDB=$TMP/pdb.json
SO=$TMP/scaledobject.json
COMPOSE=$TMP/compose.json
CTR=$TMP/container.json
jq -c '.spec.template.spec.containers[0]' "$DEP" >"$CTR"
KILL_GRACE=$(sed -n 's/^#define KILL_GRACE_S[[:space:]]*\([0-9]*\).*/\1/p' \
    "$SRC/src/supervisor.c")
[ -n "$KILL_GRACE" ] || problem "no KILL_GRACE_S in src/supervisor.c"

# --- MJQ_* names ------------------------------------------------------------------
{
    "$BIN" run --help
    "$BIN" worker --help
    "$BIN" sim --help
} | grep -oE '\bMJQ_[A-Z0-9_]+' >"$TMP/known"
# Read by mjq outside the settings table (README, docs/operations.md).
printf '%s\n' MJQ_CONFIG MJQ_WORKER_ID MJQ_HTTP_LISTEN >>"$TMP/known"
sort -u -o "$TMP/known" "$TMP/known"
bad=0
for f in "$SRC/docker/Dockerfile" "$SRC/docker/compose.yaml" "$K"/*.yaml; do
    while IFS=: read -r line name; do
        if ! grep -qx "$name" "$TMP/known"; then
            problem "${f#"$SRC"/}:$line: $name is not a variable mjq reads"
            bad=1
        fi
    done < <(grep -noE '\bMJQ_[A-Z0-9_]+' "$f" || true)
done
[ "$bad" = 1 ] || ok "every MJQ_* name in docker/ is one mjq reads"

# --- the Dockerfile's runtime stage ---------------------------------------------
last=$(df_lines | awk -F'\t' 'END { print $1 }')
img_env() # NAME: its value in the runtime stage's ENV lines
{
    df_stage "$last" | awk -F'\t' '$2 == "ENV" { print $3 }' |
        tr ' ' '\n' | sed -n "s/^$1=//p" | tail -n 1
}
IMG_CONFIG=$(img_env MJQ_CONFIG)
IMG_LISTEN=$(img_env MJQ_HTTP_LISTEN)
PORT=$(listen_port "$IMG_LISTEN")
[[ $PORT =~ ^[0-9]+$ ]] || problem "Dockerfile: MJQ_HTTP_LISTEN '$IMG_LISTEN' has no port"
# conf/mjq.conf reaches the image by a COPY; MJQ_CONFIG must name it.
img_file() # container path -> the repository file COPY puts there
{
    df_stage "$last" | awk -F'\t' '$2 == "COPY" && $3 !~ /^--from/ { print $3 }' |
        while read -r s d; do
            if [ "$d" = "$1" ] || [ "${d%/}/$(basename "$s")" = "$1" ]; then
                echo "$SRC/$s"
            fi
        done | head -n 1
}
IMG_CONF_FILE=$(img_file "$IMG_CONFIG")
if [ -z "$IMG_CONF_FILE" ] || [ ! -f "$IMG_CONF_FILE" ]; then
    problem "Dockerfile: MJQ_CONFIG=$IMG_CONFIG is no file a COPY puts in the image"
elif out=$(env -i PATH="$PATH" MJQ_CONFIG="$IMG_CONF_FILE" "$BIN" config 2>&1 >/dev/null); then
    ok "the image's config ($IMG_CONFIG = ${IMG_CONF_FILE#"$SRC"/}) is valid"
else
    problem "the image's config $IMG_CONFIG does not load: $out"
fi
df_stage "$last" | awk -F'\t' '$2 == "EXPOSE" { print $3 }' | tr ' ' '\n' |
    sed 's|/tcp$||' | grep -qx "$PORT" && ok "EXPOSE $PORT" ||
    problem "Dockerfile: no EXPOSE of the admin port $PORT (MJQ_HTTP_LISTEN)"

# A health check URL, if one is spelled out, must be the admin /healthz.
check_health_cmd() # WHERE TEXT
{
    local url
    if ! grep -qE '(^|[ /"])mjq"?,? ?"?health\b' <<<"$2"; then
        problem "$1: the health check is not \`mjq health\`: $2"
        return
    fi
    url=$(grep -oE 'https?://[^" ]+' <<<"$2" | head -n 1 || true)
    if [ -n "$url" ] && ! [[ $url =~ ^https?://[^/]+:$PORT/healthz$ ]]; then
        problem "$1: health check URL $url is not port $PORT /healthz"
        return
    fi
    ok "$1: mjq health on port $PORT /healthz"
}
check_health_cmd "Dockerfile HEALTHCHECK" \
    "$(df_stage "$last" | awk -F'\t' '$2 == "HEALTHCHECK" { print $3 }')"

# --- the Deployment's container, as the kubelet would start it ----------------
ROOT=$TMP/root # the container's files that come from volumes
mkdir -p "$ROOT"
# Writes every item of every mounted ConfigMap and Secret under $ROOT.
while read -r m; do
    name=$(jq -r .name <<<"$m")
    path=$(jq -r .mountPath <<<"$m")
    vol=$(jq -c --arg n "$name" '.spec.template.spec.volumes[] | select(.name == $n)' "$DEP")
    if [ -z "$vol" ]; then
        problem "deployment: volumeMount $name has no volume"
        continue
    fi
    if [ "$(jq -r 'has("configMap")' <<<"$vol")" = true ]; then
        src=$CM data=.data ref=$(jq -r .configMap.name <<<"$vol")
    elif [ "$(jq -r 'has("secret")' <<<"$vol")" = true ]; then
        src=$SEC data=.stringData ref=$(jq -r .secret.secretName <<<"$vol")
    else
        continue
    fi
    [ "$(jq -r .metadata.name "$src")" = "$ref" ] ||
        problem "deployment: volume $name names $ref, not $(jq -r .metadata.name "$src")"
    mkdir -p "$ROOT$path"
    while IFS=$'\t' read -r key item; do
        if [ "$(jq -r --arg k "$key" "$data | has(\$k)" "$src")" != true ]; then
            problem "deployment: volume $name: $ref has no key $key"
            continue
        fi
        mkdir -p "$(dirname "$ROOT$path/$item")"
        jq -j --arg k "$key" "$data[\$k]" "$src" >"$ROOT$path/$item"
    done < <(jq -r --argjson v "$vol" --arg d "$data" '
        ($v.configMap // $v.secret) as $s
        | if $s.items then $s.items[] | [.key, .path] | @tsv
          else (if $d == ".data" then .data else .stringData end)
               | keys[] | [., .] | @tsv end' "$src")
done < <(jq -c '.volumeMounts[]?' "$CTR")

# The environment, in order: $(VAR) expands earlier entries; Secret and
# ConfigMap values come from their manifests; a path on a mounted volume
# is redirected into $ROOT.
declare -A ENVV=()
ENV_ARGS=()
while read -r e; do
    name=$(jq -r .name <<<"$e")
    if [ "$(jq -r 'has("value")' <<<"$e")" = true ]; then
        value=$(jq -r .value <<<"$e")
        while [[ $value =~ \$\(([A-Za-z_][A-Za-z0-9_]*)\) ]]; do
            ref=${BASH_REMATCH[1]}
            [ -n "${ENVV[$ref]+x}" ] ||
                problem "deployment: env $name uses \$($ref), not defined before it"
            value=${value//"\$($ref)"/${ENVV[$ref]:-}}
        done
    elif [ "$(jq -r '.valueFrom | has("secretKeyRef")' <<<"$e")" = true ]; then
        ref=$(jq -r .valueFrom.secretKeyRef.name <<<"$e")
        key=$(jq -r .valueFrom.secretKeyRef.key <<<"$e")
        [ "$ref" = "$(jq -r .metadata.name "$SEC")" ] &&
            [ "$(jq -r --arg k "$key" '.stringData | has($k)' "$SEC")" = true ] ||
            problem "deployment: env $name: secret $ref has no key $key (secret.example.yaml)"
        value=$(jq -r --arg k "$key" '.stringData[$k] // ""' "$SEC")
    elif [ "$(jq -r '.valueFrom | has("configMapKeyRef")' <<<"$e")" = true ]; then
        key=$(jq -r .valueFrom.configMapKeyRef.key <<<"$e")
        value=$(jq -r --arg k "$key" '.data[$k] // ""' "$CM")
    else
        problem "deployment: env $name has no value the check understands"
        continue
    fi
    ENVV[$name]=$value
    case $name in
    MJQ_CONFIG | MJQ_API_KEY_FILE)
        if [ -f "$ROOT$value" ]; then
            value=$ROOT$value
        else
            problem "deployment: $name=$value is not a file on a mounted volume"
        fi
        ;;
    esac
    ENV_ARGS+=("$name=$value")
done < <(jq -c '.env[]?' "$CTR")
[ -n "${ENVV[MJQ_CONFIG]:-}" ] || {
    # Without it the image's MJQ_CONFIG applies: it must be mounted.
    if [ -f "$ROOT$IMG_CONFIG" ]; then
        ENV_ARGS+=("MJQ_CONFIG=$ROOT$IMG_CONFIG")
    else
        problem "deployment: nothing mounted at the image's MJQ_CONFIG $IMG_CONFIG"
    fi
}
if env -i PATH="$PATH" "${ENV_ARGS[@]}" "$BIN" config >"$TMP/k8s.dump" 2>"$TMP/k8s.err"; then
    ok "the Deployment's configuration loads (ConfigMap mjq.conf at MJQ_CONFIG, key file, env)"
else
    problem "the Deployment's configuration does not load: $(cat "$TMP/k8s.err")"
    # What depends on it is checked against the defaults instead.
    env -i PATH="$PATH" "$BIN" config >"$TMP/k8s.dump"
fi
eff() { sed -n "s/^$1 = //p" "$TMP/k8s.dump"; }

# --- ports and probes -------------------------------------------------------------
k8s_port() # a port name or number of the container -> the number
{
    if [[ $1 =~ ^[0-9]+$ ]]; then
        echo "$1"
    else
        jq -r --arg n "$1" '.ports[]? | select(.name == $n) | .containerPort' "$CTR"
    fi
}
[ "$(listen_port "${ENVV[MJQ_HTTP_LISTEN]:-$IMG_LISTEN}")" = "$PORT" ] ||
    problem "deployment: MJQ_HTTP_LISTEN ${ENVV[MJQ_HTTP_LISTEN]} is not port $PORT"
jq -e --argjson p "$PORT" '[.ports[]?.containerPort] | index($p)' "$CTR" \
    >/dev/null || problem "deployment: no containerPort $PORT"
for probe in livenessProbe:/healthz readinessProbe:/readyz; do
    kind=${probe%%:*} want=${probe#*:}
    path=$(jq -r ".$kind.httpGet.path // empty" "$CTR")
    port=$(k8s_port "$(jq -r ".$kind.httpGet.port // empty" "$CTR")")
    if [ "$path" = "$want" ] && [ "$port" = "$PORT" ]; then
        ok "deployment: $kind GET $path on $port"
    else
        problem "deployment: $kind is GET '$path' on '$port', want $want on $PORT"
    fi
done
svc_port=$(k8s_port "$(jq -r '.spec.ports[0].targetPort' "$SVC")")
ann() { jq -r --arg k "prometheus.io/$1" '.metadata.annotations[$k] // empty' "$SVC"; }
if [ "$svc_port" = "$PORT" ] && [ "$(jq -r '.spec.ports[0].port' "$SVC")" = "$PORT" ] &&
    [ "$(ann scrape)" = true ] && [ "$(ann port)" = "$PORT" ] &&
    [ "$(ann path)" = /metrics ]; then
    ok "service: $PORT, scraped at /metrics"
else
    problem "service: port $(jq -r '.spec.ports[0].port' "$SVC") -> $svc_port," \
        "annotations scrape=$(ann scrape) port=$(ann port) path=$(ann path);" \
        "want $PORT and true/$PORT//metrics"
fi
# mjq's own endpoints (the supervisor's admin server), when in the tree.
admin_src=$(grep -rlF --include='*.c' '"/healthz"' "$SRC/src" |
    grep -v -e /sim/ -e /healthcheck.c || true)
if [ -n "$admin_src" ]; then
    for p in /healthz /readyz /metrics; do
        grep -qF "\"$p\"" $admin_src ||
            problem "mjq serves no $p (looked in ${admin_src//$SRC\//})"
    done
    ok "mjq's admin endpoints include /healthz, /readyz, /metrics"
else
    echo "note: no admin endpoint in src/ yet: paths checked against the" \
        "documented /healthz, /readyz, /metrics"
fi
if grep -q '^admin.listen = ' "$TMP/k8s.dump"; then
    [ "$(listen_port "$(eff admin.listen)")" = "$PORT" ] &&
        ok "admin.listen is on $PORT" ||
        problem "admin.listen $(eff admin.listen) is not port $PORT"
fi

# --- grace, security, resources ---------------------------------------------------
SHUTDOWN=$(eff worker.shutdown_timeout_s)
grace=$(jq -r '.spec.template.spec.terminationGracePeriodSeconds // 30' "$DEP")
if [ -n "$SHUTDOWN" ] && [ "$grace" -gt $((SHUTDOWN + KILL_GRACE)) ]; then
    ok "terminationGracePeriodSeconds $grace > shutdown_timeout_s $SHUTDOWN + $KILL_GRACE"
else
    problem "terminationGracePeriodSeconds $grace is not above" \
        "worker.shutdown_timeout_s ${SHUTDOWN:-?} + the supervisor's $KILL_GRACE s"
fi

uid=$(df_stage "$last" | awk -F'\t' '$2 == "USER" { print $3 }' | tail -n 1)
uid=${uid%%:*}
sec=$(jq -c --slurpfile d "$DEP" '($d[0].spec.template.spec.securityContext // {})
    as $p | (.securityContext // {}) as $c | {
    nonroot: ($c.runAsNonRoot // $p.runAsNonRoot),
    uid: ($c.runAsUser // $p.runAsUser),
    rofs: $c.readOnlyRootFilesystem,
    esc: $c.allowPrivilegeEscalation,
    drop: ($c.capabilities.drop // []),
    seccomp: ($c.seccompProfile.type // $p.seccompProfile.type)}' "$CTR")
if [[ $uid =~ ^[0-9]+$ ]] && [ "$uid" != 0 ] &&
    jq -e --argjson u "$uid" '.nonroot == true and .uid == $u and .rofs == true
        and .esc == false and (.drop | index("ALL")) and .seccomp == "RuntimeDefault"' \
        <<<"$sec" >/dev/null; then
    ok "securityContext: non-root uid $uid (the image's USER), read-only root, no escalation, caps dropped, RuntimeDefault"
else
    problem "securityContext $sec (image USER '$uid'): want runAsNonRoot, runAsUser = the" \
        "image's numeric non-root USER, readOnlyRootFilesystem, no privilege" \
        "escalation, capabilities drop ALL, seccomp RuntimeDefault"
fi

mib() # Kubernetes memory quantity -> MiB
{
    case $1 in
    *Gi) echo $((${1%Gi} * 1024)) ;;
    *Mi) echo "${1%Mi}" ;;
    *Ki) echo $((${1%Ki} / 1024)) ;;
    *) echo $(($1 / 1048576)) ;;
    esac
}
res=$(jq -c .resources "$CTR")
if jq -e '.requests.cpu and .requests.memory and .limits.cpu and .limits.memory' \
    <<<"$res" >/dev/null; then
    req=$(mib "$(jq -r .requests.memory <<<"$res")")
    lim=$(mib "$(jq -r .limits.memory <<<"$res")")
    # docs/benchmarks.md: 200 jobs in ~16 MB, 10,000 in ~35 MB: a 15 MiB
    # base and ~2 KiB a job per worker, and a few MiB for the supervisor.
    workers=$(eff supervisor.workers) conc=$(eff worker.concurrency)
    need_mib=$((workers * (16 + conc * 2 / 1024) + 8))
    if [ "$lim" -ge "$req" ] && [ "$lim" -ge "$need_mib" ]; then
        ok "resources: memory ${req}Mi..${lim}Mi holds $workers x $conc jobs (~${need_mib}Mi)"
    else
        problem "resources: memory limit ${lim}Mi (request ${req}Mi) below" \
            "$workers workers x $conc jobs (~${need_mib}Mi, docs/benchmarks.md)"
    fi
else
    problem "resources: want requests and limits for cpu and memory: $res"
fi

# --- selectors, kustomization, KEDA -------------------------------------------------
labels=$(jq -c '.spec.template.metadata.labels' "$DEP")
for pair in "deployment:.spec.selector.matchLabels:$DEP" \
    "service:.spec.selector:$SVC" "pdb:.spec.selector.matchLabels:$PDB"; do
    IFS=: read -r what path file <<<"$pair"
    jq -e --argjson l "$labels" "$path | to_entries | length > 0 and
        all(.[]; \$l[.key] == .value)" "$file" >/dev/null &&
        ok "$what selector matches the pod labels" ||
        problem "$what selector $(jq -c "$path" "$file") does not match the pod labels $labels"
done

listed=$(jq -r '.resources[]' "$TMP/kustomization.json" | sort)
present=$(cd "$K" && ls -- *.yaml | grep -vx -e kustomization.yaml -e '.*\.example\.yaml' | sort)
[ "$listed" = "$present" ] && ok "kustomization lists every manifest" ||
    problem "kustomization resources [$(xargs <<<"$listed")] != manifests [$(xargs <<<"$present")]"
# kustomize itself, where kubectl is installed (it is no Debian package).
if command -v kubectl >/dev/null 2>&1; then
    if timeout 60 kubectl kustomize "$K" >"$TMP/kustomized.yaml" 2>"$TMP/kustomize.err" &&
        [ "$(grep -c '^kind:' "$TMP/kustomized.yaml")" = "$(wc -l <<<"$listed")" ]; then
        ok "kubectl kustomize renders $(wc -l <<<"$listed") objects"
    else
        problem "kubectl kustomize docker/k8s: $(cat "$TMP/kustomize.err")"
    fi
else
    echo "note: kubectl not installed: kustomize rendering not checked"
fi

[ "$(jq -r .spec.scaleTargetRef.name "$SO")" = "$(jq -r .metadata.name "$DEP")" ] ||
    problem "ScaledObject targets $(jq -r .spec.scaleTargetRef.name "$SO")"
prefix=$(eff redis.prefix)
want_lists=$(tr ',' '\n' <<<"$(eff queues)" | sed "s|^|${prefix}queue:|" | sort)
got_lists=$(jq -r '.spec.triggers[] | select(.type == "redis") | .metadata.listName' "$SO" | sort)
[ -n "$want_lists" ] && [ "$want_lists" = "$got_lists" ] &&
    ok "KEDA: one redis trigger per configured queue ($(xargs <<<"$got_lists"))" ||
    problem "KEDA redis triggers on [$(xargs <<<"$got_lists")], configured queues are [$(xargs <<<"$want_lists")]"
bad=0
while read -r t; do
    for k in addressFromEnv passwordFromEnv; do
        v=$(jq -r --arg k "$k" '.metadata[$k] // empty' <<<"$t")
        [ -z "$v" ] || [ -n "${ENVV[$v]+x}" ] || {
            problem "KEDA $k: $v is not in the container's environment"
            bad=1
        }
    done
    [[ $(jq -r .metadata.listLength <<<"$t") =~ ^[1-9][0-9]*$ ]] || {
        problem "KEDA listLength $(jq -r .metadata.listLength <<<"$t"): want a whole number > 0"
        bad=1
    }
done < <(jq -c '.spec.triggers[] | select(.type == "redis")' "$SO")
[ "$bad" = 1 ] || ok "KEDA triggers read the Redis address and password from the container's env"

# --- compose ----------------------------------------------------------------------
svc() { jq -c --arg s "$1" '.services[$s] // empty' "$COMPOSE"; }
cenv() # the environment of a compose service as NAME=VALUE lines
{
    svc "$1" | jq -r '.environment // {} | if type == "array" then .[]
        else to_entries[] | "\(.key)=\(.value)" end'
}
for s in redis sim mjq producer; do
    [ -n "$(svc "$s")" ] || problem "compose: no service $s"
done
svc redis | jq -e '.command | tostring | test("--appendonly\",\"yes")' >/dev/null &&
    ok "compose: redis with AOF" || problem "compose: redis without --appendonly yes"
for s in mjq producer; do
    mapfile -t ce < <(cenv "$s")
    if env -i PATH="$PATH" MJQ_CONFIG="$IMG_CONF_FILE" "${ce[@]}" "$BIN" config \
        >"$TMP/$s.dump" 2>"$TMP/$s.err"; then
        ok "compose: the $s service's configuration loads"
    else
        problem "compose: the $s service's configuration does not load: $(cat "$TMP/$s.err")"
    fi
done
c_listen=$(cenv mjq | sed -n 's/^MJQ_HTTP_LISTEN=//p')
[ -z "$c_listen" ] || [ "$(listen_port "$c_listen")" = "$PORT" ] ||
    problem "compose: mjq's MJQ_HTTP_LISTEN $c_listen is not port $PORT"
svc mjq | jq -r '.ports[]? | tostring' | grep -qE "(^|:)$PORT(/tcp)?\$" ||
    problem "compose: mjq does not publish port $PORT"
check_health_cmd "compose mjq healthcheck" "$(svc mjq | jq -c '.healthcheck.test')"
stop=$(duration_s "$(svc mjq | jq -r '.stop_grace_period // "10s"')")
c_shutdown=$(sed -n 's/^worker.shutdown_timeout_s = //p' "$TMP/mjq.dump")
[ -n "$c_shutdown" ] && [ "$stop" -gt $((c_shutdown + KILL_GRACE)) ] &&
    ok "compose: stop_grace_period ${stop}s > shutdown_timeout_s $c_shutdown + $KILL_GRACE" ||
    problem "compose: stop_grace_period ${stop}s is not above shutdown_timeout_s ${c_shutdown:-?} + $KILL_GRACE"
sim_listen=$(svc sim | jq -r '.command | if type == "array" then join(" ") else . end' |
    sed -n 's/.*--listen[ =]\([^ ]*\).*/\1/p')
sim_listen=${sim_listen:-$(cenv sim | sed -n 's/^MJQ_SIM_LISTEN=//p')}
base=$(sed -n 's/^api.base_url = //p' "$TMP/mjq.dump")
[ "$base" = "http://sim:$(listen_port "$sim_listen")" ] &&
    ok "compose: mjq calls the simulator at $base" ||
    problem "compose: mjq's api.base_url $base is not the sim service's --listen $sim_listen"
key_m=$(cenv mjq | sed -n 's/^MJQ_API_KEY=//p')
key_s=$(cenv sim | sed -n 's/^MJQ_SIM_KEY=//p')
[ "$key_m" = "$key_s" ] || problem "compose: mjq's MJQ_API_KEY is not the simulator's MJQ_SIM_KEY"
svc producer | jq -r '.command | tostring' | grep -q 'mjq enqueue .*--wait' ||
    problem "compose: the producer does not run mjq enqueue ... --wait"

deploy_finish
