import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** What of headless-gl's API the check uses. */
interface GlContext {
  getExtension(name: string): { destroy?: () => void } | null;
  getParameter(name: number): unknown;
  readonly MAX_TEXTURE_SIZE: number;
}
type CreateGlContext = (width: number, height: number, options?: object) => GlContext | null;

/** Debian's packages that gl@8.1.6 compiles against (it builds from source: no prebuilt binary here). */
const GL_BUILD_PACKAGES = 'libxi-dev libglew-dev libx11-dev libxext-dev g++ make python3';

let verdict: string | undefined | null = null;
let maxTextureSize: number | undefined;

/**
 * Why the `headlessgl` backend cannot run in this process, or undefined when it can. It needs
 * the optional native package `gl` (headless-gl, gpu.js's optional dependency; npm builds it
 * from source with node-gyp, and drops it silently when that build fails), an X display
 * (ANGLE in gl draws through GLX: `xvfb-run`, or DISPLAY naming a running X server) on which
 * a GL context can be made, and float textures (OES_texture_float) for gpu.js's single
 * precision. Checked once: gpu.js, too, decides once per process whether headless-gl works.
 */
export function headlessGlProblem(): string | undefined {
  if (verdict !== null) return verdict;
  verdict = findProblem();
  return verdict;
}

/** The package `gl`, or why it cannot be loaded (not installed, or its native build missing). */
export function loadGl(): CreateGlContext | string {
  try {
    return require('gl') as CreateGlContext;
  } catch (err) {
    const cause = (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' ? 'it is not installed' : (err as Error).message;
    return (
      `the headlessgl backend needs the optional native package "gl" (headless-gl), and ${cause}. ` +
      `npm ci builds it from source with node-gyp where its build dependencies are installed (Debian: ` +
      `apt-get install ${GL_BUILD_PACKAGES}) and silently leaves it out when that build fails: install them, ` +
      "then run `npm ci --foreground-scripts` and read gl's build output (where node-gyp cannot download " +
      "Node's headers, set npm_config_nodedir to the installed Node's prefix, e.g. /usr)"
    );
  }
}

function findProblem(): string | undefined {
  const createContext = loadGl();
  if (typeof createContext === 'string') return createContext;
  const display = process.env.DISPLAY;
  if (!display) {
    return (
      'the headlessgl backend needs an X display (headless-gl renders through GLX) and DISPLAY is not set: ' +
      'run the service under `xvfb-run -a` (Debian package xvfb) or set DISPLAY to a running X server'
    );
  }
  let context: GlContext | null = null;
  try {
    context = createContext(1, 1, { preserveDrawingBuffer: true });
  } catch (err) {
    return `the headlessgl backend could not create a GL context on DISPLAY=${display}: ${(err as Error).message}`;
  }
  if (!context) {
    return (
      `the headlessgl backend could not create a GL context on DISPLAY=${display}: is that X server running ` +
      '(`xvfb-run -a` starts one: Debian package xvfb) and does it offer GLX (Mesa: libgl1-mesa-dri, libglx-mesa0)?'
    );
  }
  try {
    if (!context.getExtension('OES_texture_float')) {
      return `the GL context on DISPLAY=${display} has no float textures (OES_texture_float), which single precision needs`;
    }
    maxTextureSize = Number(context.getParameter(context.MAX_TEXTURE_SIZE));
    return undefined;
  } finally {
    context.getExtension('STACKGL_destroy_context')?.destroy?.();
  }
}

/**
 * The longest side of a texture this GL takes (16384 on Mesa's llvmpipe), once the check has
 * passed. A kernel's output is one texture, batch rows by a layer's width: gpu.js refuses to
 * build a kernel with a longer side.
 */
export function headlessGlMaxTextureSize(): number | undefined {
  return maxTextureSize;
}

/** Throws the reason the headlessgl backend cannot run, if there is one (at start-up). */
export function assertHeadlessGl(): void {
  const problem = headlessGlProblem();
  if (problem) throw new Error(problem);
}
