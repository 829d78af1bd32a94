# No "# syntax=" line: the builder's own Dockerfile frontend builds it, so an air-gapped build
# pulls nothing but node:24-slim. Build (the labels say which version and commit an image holds):
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

# Dependencies stage: the production dependencies alone, installed by the image's npm.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Runtime stage: node, the production dependencies and dist/; no sources, no compiler, and no
# package manager: the run never needs npm, npx, corepack or yarn (the entrypoint is node), and a
# scanner would report their own dependencies' advisories against the image.
FROM node:24-slim
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
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
