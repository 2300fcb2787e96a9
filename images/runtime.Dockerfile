# The runtime image: `jamba-runtime serve ...` (the operator's pods run it).
#   docker build -f images/runtime.Dockerfile -t ghcr.io/jamba-serving/jamba-runtime:0.1.0 .
# BASE_IMAGE is what the process runs on: a slim Debian for the CPU backend (the default), or a CUDA
# runtime base for GPU clusters, e.g. --build-arg BASE_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
# (with the native library from `make native` in runtime/native/build/). Tensor parallelism over several
# GPUs also loads libnccl.so.2 from the loader path (or $JAMBA_NCCL_LIB).
# Locally, tools/images/build.sh builds this file without a Docker engine (buildah, mmdebstrap).
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
RUN printf '#!/bin/sh\nexec /usr/local/bin/node /app/dist/runtime/cmd/main.js "$@"\n' >/usr/local/bin/jamba-runtime \
 && chmod 755 /usr/local/bin/jamba-runtime
# Non-root; nothing under / is written at run time (the pod may mount the root filesystem read-only).
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["jamba-runtime"]
CMD ["serve", "--help"]
