#!/usr/bin/env bash
# The image test (`npm run test:container`, run by .ci/run): starts a Docker engine if none
# answers, makes the offline stand-in for the base image when it cannot be pulled, builds the
# image, runs it and checks it over HTTP (test/container/checks.ts), then removes every container
# and image it made and stops the engine if it started it. Fails, never skips, without an engine.
#   BASE_IMAGE=node:26-bookworm-slim   the Dockerfile's base
#   DOCKERD_STORAGE_DRIVERS="overlay2 vfs"   tried in turn when this script starts the engine
#   BUILD_CA_FILE=/etc/ssl/certs/ca-certificates.crt   extra CAs for the build's npm
set -euo pipefail
cd "$(dirname "$0")/.."

base_image=${BASE_IMAGE:-node:26-bookworm-slim}
max_added_mb=90
max_ready_ms=3000
export DOCKER_BUILDKIT=0 # engines here have no buildx: the legacy builder
tag=gradserve-test:$$
name=gradserve-test-$$
ca_copy=docker/ca/test-container-host.pem
logs=$(mktemp -d)
checks=(node --import tsx test/container/checks.ts)
t_begin=$SECONDS
passed=0 engine_pid='' images_before='' compose=()

ok() {
  passed=$((passed + 1))
  echo "ok $passed - $*"
}
fail() {
  echo "not ok - $*" >&2
  echo "container: $passed passed, 1 failed"
  exit 1
}
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

cleanup() {
  set +e
  rm -f "$ca_copy"
  ((${#compose[@]})) && "${compose[@]}" down >/dev/null 2>&1
  docker rm -f "$name" "$name-cpus" >/dev/null 2>&1
  docker rmi "$tag" "$tag-gpu" >/dev/null 2>&1
  if [[ -n $images_before ]]; then
    # every image made since the start (the test's, the build's intermediates, a stand-in
    # base), children before parents: `docker images -a` lists the newest first
    for _ in 1 2 3; do
      comm -13 <(echo "$images_before") <(docker images -aq --no-trunc | sort -u) >"$logs/new-images"
      [[ -s $logs/new-images ]] || break
      docker images -aq --no-trunc | grep -F -x -f "$logs/new-images" | xargs -r docker rmi -f >/dev/null 2>&1
    done
  fi
  if [[ -n $engine_pid ]]; then
    kill "$engine_pid" 2>/dev/null && for _ in $(seq 60); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -rf "$logs"
}
trap cleanup EXIT

# ---- the engine ----
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    echo "installing Debian's docker.io"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  fi
  # overlay2 where the kernel allows it (4x faster builds here than vfs), else vfs
  for driver in ${DOCKERD_STORAGE_DRIVERS:-overlay2 vfs}; do
    setsid dockerd --storage-driver="$driver" </dev/null >"$logs/dockerd-$driver.log" 2>&1 &
    engine_pid=$!
    for _ in $(seq 60); do
      docker info >/dev/null 2>&1 && break 2
      kill -0 "$engine_pid" 2>/dev/null || break
      sleep 0.5
    done
    echo "dockerd --storage-driver=$driver did not come up:" >&2
    tail -5 "$logs/dockerd-$driver.log" >&2
    kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null
    engine_pid=''
  done
  [[ -n $engine_pid ]] || fail "no Docker engine could be started (see above)"
  echo "started dockerd (pid $engine_pid, storage driver $driver); it is stopped at the end"
fi
ok "Docker engine $(docker version -f '{{.Server.Version}}'), storage driver $(docker info -f '{{.Driver}}')"
images_before=$(docker images -aq --no-trunc | sort -u)
[[ -n $images_before ]] || images_before=none

# ---- the base image: the real one if it is here or can be pulled, else the stand-in ----
if docker image inspect "$base_image" >/dev/null 2>&1; then
  base_kind='already present'
elif timeout 60 docker pull -q "$base_image" >/dev/null 2>&1; then
  base_kind=pulled
else
  scripts/base-standin.sh "$base_image" || fail "could not make the stand-in for $base_image"
  base_kind='offline stand-in (scripts/base-standin.sh)'
fi
ok "base $base_image: $base_kind"

# ---- build, with the host's CA bundle as the build stage's extra CAs ----
ca_source=${BUILD_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}
[[ -s $ca_source ]] && cp "$ca_source" "$ca_copy"
t0=$SECONDS
docker build --force-rm --target runtime --build-arg BASE_IMAGE="$base_image" -t "$tag" . >"$logs/build.log" 2>&1 ||
  { tail -40 "$logs/build.log" >&2; fail "docker build"; }
ok "built $tag in $((SECONDS - t0)) s"

# ---- the GPU variant, built from the same context: inspected only, no GPU here ----
t0=$SECONDS
docker build --force-rm --target gpu --build-arg BASE_IMAGE="$base_image" -t "$tag-gpu" . >"$logs/build-gpu.log" 2>&1 ||
  { tail -40 "$logs/build-gpu.log" >&2; fail "docker build --target gpu"; }
gpu_bytes=$(($(docker image inspect -f '{{.Size}}' "$tag-gpu") - $(docker image inspect -f '{{.Size}}' "$tag")))
docker run --rm --entrypoint sh "$tag-gpu" -c 'ldconfig -p | grep -q libvulkan.so.1 && case $NVIDIA_DRIVER_CAPABILITIES in *graphics*) ;; *) exit 1 ;; esac' ||
  fail "gpu image lacks libvulkan1 or NVIDIA_DRIVER_CAPABILITIES with graphics"
ok "gpu target built in $((SECONDS - t0)) s: libvulkan.so.1 and graphics capability present, +$(mb "$gpu_bytes") over the CPU image (not run: no GPU here)"

# ---- what the image holds ----
image_bytes=$(docker image inspect -f '{{.Size}}' "$tag")
base_bytes=$(docker image inspect -f '{{.Size}}' "$base_image")
added_bytes=$((image_bytes - base_bytes))
base_layers=$(docker history -q "$base_image" | wc -l)
echo "  layers the Dockerfile adds (newest first):"
docker history --no-trunc --human=false --format '{{.Size}}\t{{.CreatedBy}}' "$tag" | head -n -"$base_layers" | awk -F'\t' '$1 > 0 { printf "  %10.1f MB  %s\n", $1 / 1e6, substr($2, 1, 90) }'
echo "  image $(mb "$image_bytes"), base $(mb "$base_bytes"), added $(mb "$added_bytes")"
((added_bytes <= max_added_mb * 1000000)) || fail "the Dockerfile adds $(mb "$added_bytes"), over $max_added_mb MB"
ok "the Dockerfile adds $(mb "$added_bytes") over its base (target <= $max_added_mb MB)"

user=$(docker image inspect -f '{{.Config.User}}' "$tag")
[[ -n $user && ${user%%:*} != 0 && ${user%%:*} != root ]] || fail "image user is '$user'"
health=$(docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$tag")
[[ $health == *'/healthz'* ]] || fail "image health check is $health"
env=$(docker image inspect -f '{{json .Config.Env}}' "$tag")
[[ $env != *EXTRA_CA* && $(docker history --no-trunc "$tag") != *extra-ca* ]] || fail "a CA setting reached the shipped image"
leftovers=$(docker run --rm --user 0 --entrypoint find "$tag" / -xdev \( -name '*extra-ca*' -o -name "$(basename "$ca_copy")" \) -print)
[[ -z $leftovers ]] || fail "CA files in the shipped image: $leftovers"
ok "image config: user $user, health check on /healthz, no extra CA file or setting"

# wait_healthy CONTAINER SECONDS: until docker reports it healthy; $status holds the last state seen
wait_healthy() {
  local _
  for _ in $(seq $(($2 * 2))); do
    status=$(docker inspect -f '{{.State.Health.Status}}' "$1")
    [[ $status == healthy ]] && return 0
    sleep 0.5
  done
  return 1
}

# ---- run: ready time, health, the XOR lesson, non-root ----
# the health interval is shortened so the test need not wait 10 s; the check itself is the image's
docker create --name "$name" -p 127.0.0.1::8080 --health-interval=1s "$tag" >/dev/null
read -r ready_ms url < <("${checks[@]}" ready "$name" 30000 || echo failed) # it starts the container
[[ $ready_ms != failed ]] || { docker logs "$name" >&2; fail "not ready"; }
((ready_ms <= max_ready_ms)) || fail "ready $ready_ms ms after docker start (target <= $max_ready_ms ms)"
ok "ready (/readyz 200) $ready_ms ms after docker start, on $(docker exec "$name" node --version) in the container"

wait_healthy "$name" 30 || fail "container health is $status"
ok "container healthy"

xor=$("${checks[@]}" xor "$url") || fail "XOR lesson"
ok "XOR lesson through the published port: $xor"

docs=$("${checks[@]}" docs "$url") || fail "Swagger UI"
ok "Swagger UI served: $docs"

uid=$(docker exec "$name" id -u)
[[ $uid != 0 ]] || fail "the service runs as root"
ok "the service runs as uid $uid"

# ---- glibc malloc keeps large requests' memory (GLIBC_TUNABLES in the image's ENV) ----
malloc=$("${checks[@]}" info "$url" malloc) || fail "reading /info"
[[ $malloc == tuned ]] || fail "the image runs glibc malloc with its defaults ($malloc): GLIBC_TUNABLES is not set"
ok "the image runs glibc malloc with the service's settings (GLIBC_TUNABLES; /info says $malloc)"

# ---- a CPU limit sizes the compute threads: Node 20's availableParallelism() does not see it ----
docker create --name "$name-cpus" --cpus 1 -p 127.0.0.1::8080 "$tag" >/dev/null
read -r _ cpus_url < <("${checks[@]}" ready "$name-cpus" 30000 || echo failed) # it starts the container
[[ -n ${cpus_url:-} ]] || { docker logs "$name-cpus" >&2; fail "the --cpus 1 container is not ready"; }
threads=$("${checks[@]}" info "$cpus_url" threads.webasm) || fail "reading /info under --cpus 1"
seen=$(docker exec "$name-cpus" node -p 'require("node:os").availableParallelism()')
docker rm -f "$name-cpus" >/dev/null
[[ $threads == 1 ]] || fail "under --cpus 1 the service runs $threads webasm threads"
ok "under --cpus 1 the service runs 1 webasm thread (/info; Node's availableParallelism() says $seen)"

# ---- SIGTERM with a request in flight ----
# a request of 0.5-2.5 s: long enough to be caught in flight, short enough to finish within
# the grace on a loaded machine. From 8192, the batch is halved while the request is slower
# than that and doubled while it is faster (the engine's speed changes with the machine and
# with the kernels)
batch=8192
measure() {
  "${checks[@]}" long "$url" $batch >/dev/null || fail "large request (compiling its kernels)"
  long_ms=$("${checks[@]}" long "$url" $batch) || fail "large request"
}
measure
while ((long_ms > 2500 && batch > 256)); do
  batch=$((batch / 2))
  measure
done
while ((long_ms < 500 && batch < 32768)); do
  batch=$((batch * 2))
  measure
done
echo "  the large request ([32, 256, 256, 1] x $batch) takes $long_ms ms"
((long_ms >= 300)) || fail "the large request takes only $long_ms ms: too short to be caught in flight"
stop=$("${checks[@]}" stop-during "$url" "$name" $((long_ms / 3)) $batch) || { docker logs "$name" 2>&1 | tail -5 >&2; fail "request during docker stop"; }
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[[ $exit_code == 0 ]] || fail "container exited $exit_code after docker stop"
ok "$stop; exit code 0"

# ---- docker/compose.yaml: both profiles parse; the CPU service runs healthy with its limits ----
if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
else
  if ! command -v docker-compose >/dev/null; then
    echo "installing Debian's docker-compose (to check docker/compose.yaml)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  fi
  compose_cmd=(docker-compose)
fi
compose_port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
export GRADSERVE_IMAGE=$tag GRADSERVE_GPU_IMAGE=$tag-gpu GRADSERVE_PUBLISH=127.0.0.1:$compose_port
"${compose_cmd[@]}" -f docker/compose.yaml --profile gpu config -q || fail "docker/compose.yaml does not parse"
compose=("${compose_cmd[@]}" -p "gradservetest$$" -f docker/compose.yaml)
"${compose[@]}" up -d --no-build >"$logs/compose.log" 2>&1 || { cat "$logs/compose.log" >&2; fail "compose up"; }
compose_id=$("${compose[@]}" ps -q gradserve)
wait_healthy "$compose_id" 40 || fail "compose service health is $status"
limits=$(docker inspect -f 'cpus {{.HostConfig.NanoCpus}} memory {{.HostConfig.Memory}} read-only {{.HostConfig.ReadonlyRootfs}} restart {{.HostConfig.RestartPolicy.Name}}' "$compose_id")
"${checks[@]}" xor "http://127.0.0.1:$compose_port" >/dev/null || fail "XOR lesson through compose"
"${compose[@]}" down >/dev/null 2>&1
compose=()
ok "compose ($("${compose_cmd[@]}" version --short 2>/dev/null || echo "${compose_cmd[*]}")): config of both profiles parses; the CPU service became healthy ($limits) and answered the XOR lesson"

echo "image $(mb "$image_bytes"), added over the base $(mb "$added_bytes"), ready in $ready_ms ms; test took $((SECONDS - t_begin)) s"
echo "container: $passed passed, 0 failed"
