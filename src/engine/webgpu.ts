import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** What the WebGPU adapter is, without creating a device (a live Dawn device keeps a thread busy). */
export interface AdapterInfo {
  description: string;
  /** a CPU rasteriser (Mesa's llvmpipe, SwiftShader): slower here than webasm */
  software: boolean;
}

interface GpuAdapter {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string };
  isFallbackAdapter?: boolean;
}
interface NavigatorGpu {
  requestAdapter(): Promise<GpuAdapter | null>;
}

let navigatorGpu: NavigatorGpu | undefined;

/**
 * gpu.js's webgpu mode looks for the browser's `navigator.gpu`. In Node it comes from Dawn
 * (the optional package `webgpu`, 0.4.0: the newest whose binary loads with Debian 12's
 * libstdc++), installed once with the WebGPU globals (GPUBufferUsage and friends) it needs.
 */
export function installNavigatorGpu(): NavigatorGpu {
  if (navigatorGpu) return navigatorGpu;
  let dawn: { create: (flags: string[]) => NavigatorGpu; globals: Record<string, unknown> };
  try {
    dawn = require('webgpu');
  } catch (err) {
    throw new Error(`the webgpu backend needs the optional package "webgpu" (Dawn): ${(err as Error).message}`);
  }
  Object.assign(globalThis, dawn.globals);
  navigatorGpu = dawn.create([]);
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: navigatorGpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu: navigatorGpu }, configurable: true });
  return navigatorGpu;
}

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software/i;

/** The WebGPU adapter this machine offers, or undefined when there is none (or no Dawn). */
export async function findAdapter(): Promise<AdapterInfo | undefined> {
  let adapter: GpuAdapter | null;
  try {
    adapter = await installNavigatorGpu().requestAdapter();
  } catch {
    return undefined;
  }
  if (!adapter) return undefined;
  const info = adapter.info ?? {};
  const description = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  return { description, software: adapter.isFallbackAdapter === true || SOFTWARE.test(description) };
}

/**
 * Whether this Linux machine (or container) has GPU device nodes at all: DRM render nodes or
 * NVIDIA's. Without them there is no hardware adapter to find, and `auto` does not load Dawn
 * (which would only find a software rasteriser, or print that Vulkan is missing).
 */
export function hasGpuDevice(): boolean {
  if (process.platform !== 'linux') return true;
  try {
    return existsSync('/dev/dri') || readdirSync('/dev').some((name) => name.startsWith('nvidia'));
  } catch {
    return false;
  }
}
