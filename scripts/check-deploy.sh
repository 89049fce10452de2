#!/usr/bin/env bash
# Validates deploy/: the Prometheus example config and alert rules (promtool check), the alert
# rules' unit tests (promtool test rules), the Grafana dashboard, and that every gk_ metric they
# use is one the built services export (scripts/deploy-metrics.mjs).
#
# promtool comes from Debian's `prometheus` package. Installing that package would also install
# and start a Prometheus server, so the .deb is downloaded with apt and only its promtool is
# extracted, into node_modules/.cache/promtool (kept between runs). Set PROMTOOL to use another.
set -euo pipefail
cd "$(dirname "$0")/.."

find_promtool() {
  if [ -n "${PROMTOOL:-}" ]; then echo "$PROMTOOL"; return; fi
  if command -v promtool >/dev/null 2>&1; then command -v promtool; return; fi
  local cache=node_modules/.cache/promtool
  if [ ! -x "$cache/usr/bin/promtool" ]; then
    local policy
    policy=$(apt-cache policy prometheus 2>/dev/null || true)
    if ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
      echo "check-deploy: refreshing apt's package lists to find Debian's prometheus package" >&2
      apt-get update -qq
    fi
    local tmp
    tmp=$(mktemp -d)
    chmod 777 "$tmp" # apt downloads as its unprivileged _apt user, which must be able to write here
    (cd "$tmp" && apt-get download -qq prometheus)
    mkdir -p "$cache"
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$cache" ./usr/bin/promtool
    rm -rf "$tmp"
  fi
  echo "$cache/usr/bin/promtool"
}

promtool=$(find_promtool)
"$promtool" --version 2>&1 | head -1

"$promtool" check config deploy/prometheus/prometheus.example.yml
"$promtool" check rules deploy/prometheus/*.rules.yml
"$promtool" test rules deploy/prometheus/tests/*.test.yml

if [ ! -f apps/worker/dist/metrics.js ] || [ ! -f apps/ingest/dist/metrics.js ]; then
  npx turbo run build --output-logs=errors-only --filter=@gk/ingest --filter=@gk/worker
fi
node scripts/deploy-metrics.mjs
