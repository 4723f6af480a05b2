import type { BACKENDS } from '../src/engine/types.js';
import { findAdapter } from '../src/engine/webgpu.js';
import { headlessGlSkip } from './gl-display.js';

/**
 * Why a backend's suites cannot run on this machine (false: they run), for the suites that
 * cover every backend. WebGPU needs an adapter: Mesa's llvmpipe here, a GPU elsewhere.
 * headless-gl needs the native package gl and an X display (a private Xvfb is started when
 * DISPLAY is unset). CI provides both and sets GRADSERVE_REQUIRE_WEBGPU=1 and
 * GRADSERVE_REQUIRE_HEADLESSGL=1, so there nothing skips: a missing one fails.
 */
export async function backendSkips(): Promise<Record<(typeof BACKENDS)[number], string | false>> {
  const webgpu =
    (await findAdapter()) || process.env.GRADSERVE_REQUIRE_WEBGPU === '1'
      ? false
      : 'no WebGPU adapter here (install mesa-vulkan-drivers for llvmpipe)';
  return { cpu: false, webasm: false, webgpu, headlessgl: await headlessGlSkip() };
}
