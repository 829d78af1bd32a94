# syntax=docker/dockerfile:1
# Build (the labels say which version and commit an image holds):
#   docker build -t ml-scheduler:0.1.0 \
#     --build-arg VERSION="$(node -p 'require("./package.json").version')" \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE=https://git.example.org/platform/ml-scheduler .

# Build stage: compile the TypeScript sources to dist/.
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` devDependency, which pins Node 24 for `npm test` on machines with an
# older Node, would run its install script and download a second Node on top of the image's own.
# It is the only package with an install script (a test checks the lockfile); tsc runs on the
# image's Node.
RUN npm ci --ignore-scripts --no-audit --no-fund
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
# Sized for a 256 MiB memory limit (kubernetes.example.yaml sets the same): a 128 MiB heap, and
# 8 MiB semi-spaces, without which V8 grows the young generation toward 128 MB under the heap cap,
# runs a full GC every few dozen ms and peaks near 300 MB RSS at 50,000 patients (170 MB with it).
# For a bigger limit, raise --max-old-space-size to about half of it.
ENV NODE_OPTIONS="--max-old-space-size=128 --max-semi-space-size=8"
# Declared last: a build argument invalidates the cache of every RUN after it, and REVISION changes
# with each commit.
ARG VERSION
ARG REVISION
ARG SOURCE
LABEL org.opencontainers.image.title="ml-scheduler" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
# Writes nothing at run time: works with a read-only root filesystem (--lock needs a writable path).
# A numeric user (the image's `node`), so that Kubernetes' runAsNonRoot can verify it is not root.
USER 1000
# node directly, never npm (which swallows signals); "--" keeps Node from reading --env-file itself.
ENTRYPOINT ["node", "--", "/app/bin/ml-scheduler.js"]
