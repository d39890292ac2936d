# Build with dev dependencies, ship production dependencies and compiled JavaScript only.
FROM node:22.20.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The client library: npm run build compiles it too, and the chat page loads it from client/dist.
COPY client/package.json client/tsconfig.json ./client/
COPY client/src ./client/src
RUN npm run build && npm prune --omit=dev

FROM node:22.20.0-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json ./
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
# The chat page at /: static files and the client library's browser build.
COPY --chown=node:node public ./public
COPY --from=build --chown=node:node /app/client/dist ./client/dist
# Writable by the service for the embedded database (DATA_DIR), used only without DATABASE_URL.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3000
# The check starts a Node process: on a busy host that alone can take seconds, and a 3 s timeout
# marked replicas unhealthy that served well (seen with 5 replicas starting on 2 cores).
HEALTHCHECK --interval=10s --timeout=10s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/main.js"]
