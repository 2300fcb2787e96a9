# The operator image: `jamba-operator` (the Helm chart's Deployment runs it).
#   docker build -f images/operator.Dockerfile -t ghcr.io/jamba-serving/jamba-operator:0.1.0 .
# Locally, tools/images/build.sh builds this file without a Docker engine (buildah, mmdebstrap).
# The build stage is the runtime image's, line for line, so a builder with a layer cache builds it once.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${NODE_IMAGE} AS build
# Behind a TLS-intercepting proxy: mount its CA bundle into the build and name it here.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY common common
COPY runtime runtime
COPY operator operator
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --no-audit --no-fund

FROM ${BASE_IMAGE}
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
RUN printf '#!/bin/sh\nexec /usr/local/bin/node /app/dist/operator/cmd/main.js "$@"\n' >/usr/local/bin/jamba-operator \
 && chmod 755 /usr/local/bin/jamba-operator
USER 65532:65532
ENTRYPOINT ["jamba-operator"]
