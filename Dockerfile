# gradserve's production image.
#   docker build -t gradserve .                  the CPU image (stage `runtime`)
#   docker build --target gpu -t gradserve:gpu . with the Vulkan loader for NVIDIA GPUs (untested)
# The base is an argument so it can be swapped (another Node >= 22 on Debian), e.g. for the
# previous LTS:  --build-arg BASE_IMAGE=node:24-bookworm-slim
ARG BASE_IMAGE=node:26-bookworm-slim

# ---- build: all dependencies, src/ bundled into dist/, and what the bundle loads at run time apart ----
FROM ${BASE_IMAGE} AS build
WORKDIR /build
# Extra CA certificates for a TLS-intercepting proxy between this build and the npm registry:
# any docker/ca/*.pem or *.crt (git-ignored, absent by default). Only this stage sees them,
# through NODE_EXTRA_CA_CERTS inside the RUN; the shipped stage copies nothing from here but
# the app.
COPY docker/ca/ /tmp/extra-ca/
COPY package.json package-lock.json ./
COPY patches/ patches/
# --ignore-scripts: nothing here needs an install script but gradserve's own postinstall
# (patch-package, run explicitly below for both trees), and npm versions that do not know
# package.json's allowScripts would try to compile gl, gpu.js's optional headless-GL binding:
# the image does not offer the headlessgl backend (it needs an X server; forcing it here fails
# at start-up with a message saying so), so gl is deleted (its build helpers go later, with
# what the bundle does not load). webgpu packages
# (gpu.js's, and gradserve's own where present) carry Dawn for every platform (70-85 MB each):
# only this platform's build is kept. gpu.js is patched (patches/, bench/RESULTS.md issue 3) in
# /prod too, with the dev tree's patch-package, and checked.
RUN cat /tmp/extra-ca/*.pem /tmp/extra-ca/*.crt >/tmp/extra-ca.pem 2>/dev/null; \
  if [ -s /tmp/extra-ca.pem ]; then export NODE_EXTRA_CA_CERTS=/tmp/extra-ca.pem; fi \
  && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && rm -rf node_modules/gl \
  && platform=$(node -p 'process.platform + "-" + process.arch') \
  && find node_modules -path '*/webgpu/dist/*' \( -name '*.dll' -o -name '*.dawn.node' ! -name "$platform.dawn.node" \) -delete \
  && mkdir /prod && mv node_modules /prod/ \
  && npm ci --ignore-scripts --no-audit --no-fund \
  && npx patch-package \
  && cp package.json /prod/ && cp -r patches /prod/ \
  && (cd /prod && /build/node_modules/.bin/patch-package) \
  && grep -q 'gradserve patch' /prod/node_modules/gpu.js/src/backend/web-assembly/function-node.js \
  && rm -rf /prod/package.json /prod/patches /tmp/extra-ca.pem /root/.npm
COPY tsconfig.json ./
COPY scripts/build.ts scripts/externals.ts scripts/prune-runtime.ts scripts/
COPY src/ src/
# the bundle holds every dependency but the externals: /prod keeps only those and theirs
RUN npm run build && npx tsx scripts/prune-runtime.ts /prod

# ---- runtime: compiled output and production dependencies, run as an unprivileged user ----
FROM ${BASE_IMAGE} AS runtime
# tini as PID 1 forwards SIGTERM to node and reaps zombies. Node as PID 1 would also get
# SIGTERM (server.ts handles it), but only once its handler is installed: the kernel drops
# signals without a handler to PID 1, so a `docker stop` during start-up would wait the whole
# stop timeout for a SIGKILL. Under tini an early SIGTERM simply ends node.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
  && groupadd --system --gid 10001 gradserve \
  && useradd --system --uid 10001 --gid gradserve --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin gradserve
WORKDIR /app
# owned by root and read-only to the service's user
COPY --from=build /build/package.json ./
COPY --from=build /prod/node_modules/ node_modules/
COPY --from=build /build/dist/ dist/
# Configuration is by environment only (README "Configuration"); the app's defaults hold but
# for these. HOST: every interface of the container, not its loopback. The shutdown grace stays
# under `docker stop`'s default 10 s, so compute still running then is abandoned with a 503
# that clients can retry, not cut off by a SIGKILL. GLIBC_TUNABLES: malloc keeps and reuses
# the memory of large requests instead of faulting in fresh pages for each (src/runtime/malloc.ts).
ENV NODE_ENV=production \
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728 \
  HOST=0.0.0.0 \
  PORT=8080 \
  GRADSERVE_SHUTDOWN_GRACE_MS=7000
EXPOSE 8080
# numeric, so that orchestrators can verify runAsNonRoot
USER 10001:10001
# The slim base has no curl: node's fetch, against PORT in case it was changed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/server.js"]

# ---- gpu: the Vulkan loader and the NVIDIA container runtime's settings ----
# For a webgpu backend (Dawn, from the webgpu package, talks to the GPU through Vulkan). The
# NVIDIA runtime mounts the driver's Vulkan files only when the capabilities include graphics.
FROM runtime AS gpu
USER root
RUN apt-get update \
  && apt-get install -y --no-install-recommends libvulkan1 \
  && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
USER 10001:10001
ENV NVIDIA_VISIBLE_DEVICES=all \
  NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics

# ---- default: a plain `docker build .` makes the last stage, so it is the CPU image again ----
# (The legacy builder, without BuildKit, still builds every stage before its target, gpu
# included; `--target runtime` makes the same image without that.)
FROM runtime AS default
