# syntax=docker/dockerfile:1
# Build stage: compile the TypeScript sources to dist/.
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime stage: production dependencies only, no sources, no compiler.
FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY --from=build /src/dist ./dist
# Writes nothing at run time: works with a read-only root filesystem (--lock needs a writable path).
USER node
# node directly, never npm (which swallows signals); "--" keeps Node from reading --env-file itself.
ENTRYPOINT ["node", "--", "/app/bin/ml-scheduler.js"]
