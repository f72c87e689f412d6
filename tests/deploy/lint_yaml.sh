#!/usr/bin/env bash
# ctest-timeout: 60
# yamllint --strict (warnings fail too) with the repository's .yamllint
# over the compose file, every Kubernetes manifest and .yamllint itself.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
deploy_init
need yamllint

files=("$SRC/.yamllint" "$SRC/docker/compose.yaml" "$SRC"/docker/k8s/*.yaml)
for f in "${files[@]}"; do
    if out=$(yamllint --strict -f parsable -c "$SRC/.yamllint" "$f" 2>&1); then
        ok "yamllint ${f#"$SRC"/}"
    else
        problem "yamllint ${f#"$SRC"/}:"$'\n'"$out"
    fi
done
[ "${#files[@]}" -ge 8 ] || problem "only ${#files[@]} YAML files found"
deploy_finish
