#!/usr/bin/env bash
# The compose stack, run as users run it (called by .ci/run; works on a fresh machine as root):
#   1. a Docker engine and compose: installed (Debian's docker.io, docker-compose) and started
#      when absent;
#   2. base images: NODE_IMAGE / REDIS_IMAGE as given, else the official ones when present or
#      pullable, else local stand-ins built by scripts/local-base-images.sh;
#   3. `compose --profile sandbox up -d --build`, then waits until every service is healthy;
#   4. `npm run demo` against it, and checks what the sandbox recorded (17 events, 7 profiles);
#   5. a second stream (scripts/compose-e2e-stream.mjs) during which the Redis container is
#      killed with SIGKILL and the worker container restarted: every event of every webhook
#      answered 200 must be recorded, none missing; the sandbox's dedup count is reported;
#   6. `down -v` at the end, whatever happened (and the engine stopped if this script started it).
# Env: COMPOSE_E2E_PORT / COMPOSE_E2E_SANDBOX_PORT (published ports, default 13000 / 14010, so a
# local `npm start` does not collide), GK_DOCKERD_LOG (default /tmp/gk-dockerd.log).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
say() { printf 'compose-e2e [%3ss]: %s\n' "$(($(date +%s) - start))" "$*"; }
fail() { say "FAILED: $*"; exit 1; }

# --- 1. Docker engine and compose ----------------------------------------------------------------
started_dockerd=""
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "needs ${need[*]}: install them (apt-get install ${need[*]}) or run as root"
  say "installing ${need[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "no Docker engine answers, and only root can start one"
  log=${GK_DOCKERD_LOG:-/tmp/gk-dockerd.log}
  say "starting dockerd (log: $log)"
  dockerd >"$log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 "$log"; fail "dockerd did not start"; }
fi
if docker compose version >/dev/null 2>&1; then compose_cmd=(docker compose); else compose_cmd=(docker-compose); fi
say "engine $(docker version -f '{{.Server.Version}}'), compose: ${compose_cmd[*]} $("${compose_cmd[@]}" version --short 2>/dev/null)"

# The legacy builder: BuildKit needs a buildx plugin that Debian's docker.io does not ship (the
# Dockerfile builds with either).
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
export PORT=${COMPOSE_E2E_PORT:-13000} SANDBOX_PORT=${COMPOSE_E2E_SANDBOX_PORT:-14010}
project=gk-e2e
compose() { "${compose_cmd[@]}" -p "$project" --project-directory . -f docker-compose.yml --profile sandbox "$@"; }

finish() {
  code=$?
  if [ $code -ne 0 ]; then
    say "logs of the stack (last 60 lines per service):"
    compose logs --no-color --tail=60 2>&1 | sed 's/^/  /' || true
  fi
  say "down -v"
  compose down -v --remove-orphans >/dev/null 2>&1 || say "down -v failed"
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
  say "done (exit $code) in $(($(date +%s) - start)) s"
  exit $code
}
trap finish EXIT

# --- 2. base images ------------------------------------------------------------------------------
pullable() { docker image inspect "$1" >/dev/null 2>&1 || timeout 60 docker pull -q "$1" >/dev/null 2>&1; }
if [ -z "${NODE_IMAGE:-}" ] || [ -z "${REDIS_IMAGE:-}" ]; then
  if pullable node:24-bookworm-slim && pullable redis:7.4-alpine; then
    export NODE_IMAGE=node:24-bookworm-slim REDIS_IMAGE=redis:7.4-alpine
  else
    say "the official base images cannot be pulled: building local stand-ins"
    eval "$(bash scripts/local-base-images.sh --env)"
  fi
fi
NPM_REGISTRY=$(npm config get registry 2>/dev/null || true)
export NODE_IMAGE REDIS_IMAGE NPM_REGISTRY
say "base images: NODE_IMAGE=$NODE_IMAGE REDIS_IMAGE=$REDIS_IMAGE"

# --- 3. up, healthy ------------------------------------------------------------------------------
compose down -v --remove-orphans >/dev/null 2>&1 || true
say "up -d --build"
build_log=$(mktemp)
if ! compose up -d --build >"$build_log" 2>&1; then
  tail -40 "$build_log"
  fail "compose up"
fi
say "up: $(grep -c '^Step ' "$build_log" || true) build steps"
services=(redis sandbox sandbox-ingest sandbox-worker)
for _ in $(seq 1 90); do
  unhealthy=()
  for s in "${services[@]}"; do
    id=$(compose ps -q "$s")
    status=$([ -n "$id" ] && docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo missing)
    [ "$status" = healthy ] || unhealthy+=("$s:$status")
  done
  [ ${#unhealthy[@]} -eq 0 ] && break
  sleep 2
done
[ ${#unhealthy[@]} -eq 0 ] || fail "not healthy: ${unhealthy[*]}"
say "every service healthy: ${services[*]}"

# The ports are published on 127.0.0.1 only (BIND_ADDRESS unset).
published=$(docker port "$(compose ps -q sandbox-ingest)" 3000)
[[ $published == 127.0.0.1:* ]] || fail "the ingest is published on $published, not 127.0.0.1"

# --- 4. the demo ---------------------------------------------------------------------------------
say "npm run demo against the stack"
demo_out=$(mktemp)
DEMO_TIMEOUT_MS=90000 DEMO_INTERVAL_MS=50 node scripts/demo.mjs >"$demo_out" 2>&1 || {
  cat "$demo_out"
  fail "the demo"
}
grep -q 'Klaviyo (sandbox): 17 events for 7 profiles' "$demo_out" || { cat "$demo_out"; fail "the demo's summary"; }
for answer in '200 accepted' '200 duplicate' '200 pong' '200 ignored'; do
  grep -q "$answer" "$demo_out" || { cat "$demo_out"; fail "the demo saw no '$answer'"; }
done
say "demo passed: $(grep -o 'Klaviyo (sandbox): 17 events for 7 profiles.*' "$demo_out" | sed 's/\x1b\[[0-9;]*m//g')"

# --- 5. Redis killed and the worker restarted during a stream --------------------------------------
say "second stream: Redis SIGKILLed, worker restarted in the middle"
REDIS_CONTAINER=$(compose ps -q redis) WORKER_CONTAINER=$(compose ps -q sandbox-worker) \
  node scripts/compose-e2e-stream.mjs || fail "the stream through a Redis kill and a worker restart"
