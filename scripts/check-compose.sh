#!/usr/bin/env bash
# Checks docker-compose.yml without a Docker engine:
#   1. the file is valid, for both routes (--profile bridge, --profile sandbox), with no .env and
#      with a .env like .env.example; BRIDGE_SANDBOX=true only in the sandbox profile; ports
#      published on BIND_ADDRESS (default 127.0.0.1): `docker compose config -q` (Compose v2, needs no engine), else
#      `docker-compose config -q` (Debian's docker-compose package, installed when missing);
#   2. every env var the services read (the keys of the zod schemas in apps/*/src/config.ts and
#      packages/runtime/src/env.ts) appears in docker-compose.yml or .env.example.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
say() { printf 'check-compose: %s\n' "$*"; }

# --- 1. validate -------------------------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  if ! command -v docker-compose >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing Debian's docker-compose to validate the file"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    else
      say "neither 'docker compose' nor 'docker-compose' is available: install one (apt-get install docker-compose)"
      exit 1
    fi
  fi
  compose=(docker-compose)
fi
say "validating with: ${compose[*]} ($("${compose[@]}" version --short 2>/dev/null || echo '?'))"

no_env=$(mktemp)
trap 'rm -f "$no_env"' EXIT
for env_file in "$no_env" .env.example; do
  for profile in bridge sandbox; do
    label="${profile:+--profile $profile }with $([ "$env_file" = "$no_env" ] && echo 'no .env' || echo "$env_file")"
    args=(--project-directory . -f docker-compose.yml --env-file "$env_file")
    [ -n "$profile" ] && args+=(--profile "$profile")
    if out=$("${compose[@]}" "${args[@]}" config -q 2>&1); then
      say "ok: config ${label}"
    else
      say "INVALID: config ${label}"
      printf '%s\n' "$out" | sed 's/^/  /'
      fail=1
    fi
  done
done
services=$("${compose[@]}" --project-directory . -f docker-compose.yml --env-file "$no_env" --profile sandbox config --services 2>/dev/null | sort | tr '\n' ' ')
if [ "$services" != "ingest redis sandbox sandbox-ingest sandbox-worker worker " ]; then
  say "expected services redis, ingest and worker (profile bridge), sandbox, sandbox-ingest and sandbox-worker (profile sandbox); found: ${services}"
  fail=1
fi
# BRIDGE_SANDBOX=true (dev credentials accepted in production) only in the sandbox profile's
# services; ports published on BIND_ADDRESS (default 127.0.0.1) or on loopback.
rendered=$("${compose[@]}" --project-directory . -f docker-compose.yml --env-file "$no_env" --profile sandbox config 2>/dev/null)
sandbox_services=$(awk '/^  [a-z-]+:$/ { svc=$1 } /BRIDGE_SANDBOX: .true/ { sub(":", "", svc); print svc }' <<<"$rendered" | sort | tr '\n' ' ')
if [ "$sandbox_services" != "sandbox-ingest sandbox-worker " ]; then
  say "BRIDGE_SANDBOX=true must be set in sandbox-ingest and sandbox-worker only; found in: ${sandbox_services}"
  fail=1
fi
if grep -E '^[[:space:]]+- "?[0-9$]' docker-compose.yml | grep -vE '"(\$\{BIND_ADDRESS:-127\.0\.0\.1\}|127\.0\.0\.1):'; then
  say "a port is published without BIND_ADDRESS (default 127.0.0.1) or 127.0.0.1"
  fail=1
fi

# --- 2. every env var the services read is documented --------------------------------------------
schemas=(apps/*/src/config.ts packages/runtime/src/env.ts)
vars=$(grep -hoE '^[[:space:]]+[A-Z][A-Z0-9_]+:' "${schemas[@]}" | tr -d ' :' | sort -u)
[ -n "$vars" ] || { say "found no env vars in ${schemas[*]}: has the schema layout changed?"; exit 1; }
missing=()
not_passed=()
for var in $vars; do
  in_compose=0
  in_example=0
  grep -qE "^[[:space:]]+${var}:" docker-compose.yml && in_compose=1
  grep -qE "^#?[[:space:]]*${var}=" .env.example && in_example=1
  if [ $in_compose = 0 ] && [ $in_example = 0 ]; then
    missing+=("$var ($(grep -lE "^[[:space:]]+${var}:" "${schemas[@]}" | tr '\n' ' ' | sed 's/ $//'))")
  elif [ $in_compose = 0 ]; then
    not_passed+=("$var")
  fi
done
count=$(wc -w <<<"$vars")
if [ ${#missing[@]} -gt 0 ]; then
  say "env vars read by the services but in neither docker-compose.yml nor .env.example:"
  printf '  %s\n' "${missing[@]}"
  fail=1
else
  say "ok: all ${count} env vars the services read appear in docker-compose.yml or .env.example"
fi
if [ ${#not_passed[@]} -gt 0 ]; then
  # Compose passes only the variables it lists, so these reach no container when set in .env.
  say "warning: in .env.example but not passed by docker-compose.yml: ${not_passed[*]}"
fi

exit $fail
