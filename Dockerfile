# syntax=docker/dockerfile:1
# One image for ingest, worker and sandbox; the compose file picks the command.
FROM node:24-bookworm-slim AS build
WORKDIR /app
ENV TURBO_TELEMETRY_DISABLED=1
COPY . .
RUN npm ci --no-audit --no-fund \
 && npx turbo run build \
 && npm prune --omit=dev \
 && rm -rf apps/*/src packages/*/src packages/testing apps/*/test .turbo

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /app /app
# The ingest's spool (docker-compose.yml mounts a volume here): writable by the node user.
RUN mkdir -p /app/.data/spool && chown -R node:node /app/.data
USER node
EXPOSE 3000 3001 4010
CMD ["node", "apps/ingest/dist/main.js"]
