# One image for ingest, worker and sandbox; the compose file picks the command.
# No `# syntax=` line: it would make BuildKit pull a frontend image, which fails where no registry
# can be reached. The file builds the same with BuildKit and with the legacy builder.
#
# NODE_IMAGE: the base image. Where it cannot be pulled (no registry access, a proxy),
# scripts/local-base-images.sh builds a stand-in from Debian and npm packages.
ARG NODE_IMAGE=node:24-bookworm-slim

# Only the package manifests, so the `npm ci` layer below is reused until they change.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir /manifests \
 && find . -name node_modules -prune -o \( -name package.json -o -name package-lock.json \) -print \
    | xargs cp --parents -t /manifests

FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV TURBO_TELEMETRY_DISABLED=1
# The npm registry to install from (blank: npm's default). HTTP_PROXY, HTTPS_PROXY and NO_PROXY
# are predefined build arguments; a TLS-intercepting proxy's CA comes with the base image
# (NODE_EXTRA_CA_CERTS, as scripts/local-base-images.sh sets it).
ARG NPM_REGISTRY=
COPY --from=manifests /manifests/ ./
RUN npm ci --no-audit --no-fund ${NPM_REGISTRY:+--registry=$NPM_REGISTRY}
COPY . .
RUN npx turbo run build --filter=@gk/ingest --filter=@gk/worker --filter=@gk/sandbox \
 && npm prune --omit=dev \
 && rm -rf apps/*/src packages/*/src packages/testing apps/*/test .turbo

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /app /app
# The ingest's spool (docker-compose.yml mounts a volume here): writable by the node user.
RUN mkdir -p /app/.data/spool && chown -R node:node /app/.data
USER node
EXPOSE 3000 3001 4010
CMD ["node", "apps/ingest/dist/main.js"]
