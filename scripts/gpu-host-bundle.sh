#!/usr/bin/env bash
# For a GPU host with neither Node nor a package registry (how bench/RESULTS.md's H200
# figures were made): one folder, .gpubench/, with this machine's Node binary, esbuild
# bundles of the engine benchmarks and engine test files, the packages they load at run
# time (gpu.js as patched, webgpu's Linux binary, TF.js core and wasm), and run.sh.
#   bash scripts/gpu-host-bundle.sh       (after npm ci; x86-64 Linux)
# Copy .gpubench/ to the host (with Debian's libvulkan1 .deb files in .gpubench/debs/ if the
# host has no Vulkan loader), then there: bash .gpubench/run.sh [results folder]
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpubench
rm -rf "$out/app" && mkdir -p "$out/app/node_modules/@tensorflow"
npx esbuild bench/engine.ts bench/dispatch.ts bench/pipeline.ts test/engine/mlp.test.ts test/engine/train.test.ts \
  --bundle --platform=node --format=esm --target=node20 --outdir="$out/app" --out-extension:.js=.mjs --log-level=warning \
  --external:webgpu --external:gl --external:gpu.js \
  --external:@tensorflow/tfjs-core --external:@tensorflow/tfjs-backend-wasm --external:@tensorflow/tfjs-backend-cpu \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
nm=$out/app/node_modules
mkdir -p "$nm/webgpu/dist" "$nm/gpu.js"
cp node_modules/webgpu/{index.js,package.json} "$nm/webgpu/"
cp node_modules/webgpu/dist/linux-x64.dawn.node "$nm/webgpu/dist/"
cp -r node_modules/gpu.js/{src,package.json,LICENSE} "$nm/gpu.js/"
for p in acorn gpu-mock.js @tensorflow/tfjs-core @tensorflow/tfjs-backend-cpu @tensorflow/tfjs-backend-wasm long node-fetch whatwg-url tr46 webidl-conversions seedrandom; do
  cp -r "node_modules/$p" "$nm/$p"
done
find "$nm" \( -name '*.map' -o -name '*.min.js' \) -delete
tar -C "$out" -cJf "$out/app.tar.xz" app && rm -rf "$out/app"
xz -T0 -6 -c "$(command -v node)" >"$out/node.xz"
cat >"$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# On the GPU host: unpack, find a WebGPU adapter, run the engine tests and benchmarks.
set -u
here=$(cd "$(dirname "$0")" && pwd)
results=$(mkdir -p "${1:-$here/results}" && cd "${1:-$here/results}" && pwd)
for f in "$here"/debs/*.deb; do [ -e "$f" ] && dpkg -x "$f" / && ldconfig; done
work=$(mktemp -d)
xz -dc "$here/node.xz" >"$work/node" && chmod +x "$work/node" && tar -C "$work" -xJf "$here/app.tar.xz"
export PATH=$work:$PATH GRADSERVE_REQUIRE_WEBGPU=1
cd "$work/app"
adapter() { timeout 60 node --input-type=module -e "const {create,globals}=await import('webgpu'); Object.assign(globalThis,globals); const a=await create([]).requestAdapter(); console.log('adapter:', a ? [a.info.vendor, a.info.device, a.info.description].join(' / ') : 'none'); process.exit(a ? 0 : 1)"; }
if ! adapter; then # NVIDIA's container runtime keeps its ICD files here
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  adapter || { echo "no WebGPU adapter"; exit 3; }
fi
for t in mlp train; do timeout 300 node "test/engine/$t.test.mjs" >"$results/$t-test.txt" 2>&1; echo "$t.test exit $?"; done
timeout 600 node bench/engine.mjs S,M,L cpu,webasm,webgpu 2>&1 | tee "$results/engine.txt"
timeout 600 node bench/dispatch.mjs gpu 2>&1 | tee "$results/dispatch.txt"
timeout 300 node bench/pipeline.mjs webgpu 2>&1 | tee "$results/pipeline.txt"
RUN
ls -la "$out"
