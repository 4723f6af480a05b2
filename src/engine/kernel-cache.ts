/** A kernel as a backend compiled it. */
export interface CompiledKernel {
  run: (...args: unknown[]) => unknown;
  destroy: () => void;
  /** whether it keeps memory for its arguments and result between calls (see kernelBytes) */
  keepsMemory: boolean;
}

interface Entry {
  key: string;
  kernel: CompiledKernel;
  leases: number;
  evicted: boolean;
  /** true until the first call, which is when gpu.js builds the kernel */
  fresh: boolean;
  /** the memory the kernel keeps between calls (see kernelBytes), known after its first call */
  bytes: number;
}

export interface KernelCacheStats {
  size: number;
  capacity: number;
  /** memory the cached kernels keep (their arguments' and results' buffers), and its bound */
  bytes: number;
  maxBytes: number;
  compiles: number;
  hits: number;
  evictions: number;
  compileMsTotal: number;
}

export interface Lease {
  /**
   * Run the kernel: its result, or a promise of it (as the backend answers). The first call
   * builds it and is timed as compile.
   */
  call: (...args: unknown[]) => unknown;
  release: () => void;
}

/**
 * What the cached kernels may keep, by default: a few large shapes (L's 8 kernels keep about
 * 136 MiB), and room beside them for two requests at the activation limit in 2 GiB.
 */
export const DEFAULT_KERNEL_CACHE_BYTES = 512 * 2 ** 20;

export function kernelKey(parts: Record<string, string | number>): string {
  // once per spec (dense.ts memoizes them)
  let key = '';
  for (const k in parts) key += `${k}=${parts[k]}|`;
  return key;
}

/**
 * The memory a kernel keeps between calls, on a backend that keeps any: webasm holds its
 * arguments and its result in a WebAssembly memory of their size, a GPU backend in buffers
 * of their size (cpu allocates its results per call). Counts typed arrays, arrays of them
 * (rows), and numbers.
 */
export function kernelBytes(args: unknown[], result: unknown): number {
  const bytes = (v: unknown): number => {
    if (ArrayBuffer.isView(v)) return v.byteLength;
    if (typeof v === 'number') return 4;
    if (!Array.isArray(v)) return 0;
    let n = 0;
    for (const x of v) n += bytes(x);
    return n;
  };
  return bytes(args) + bytes(result);
}

/**
 * A bounded LRU of compiled kernels: at most `capacity` of them, keeping at most `maxBytes`
 * of memory. The key names the backend, the op and every size and option that changes the
 * compiled code (see kernelKey). Kernels are leased for the length of a request: an entry
 * evicted while a request still uses it is destroyed when the last lease is returned, never
 * under a running computation.
 */
export class KernelCache {
  private readonly entries = new Map<string, Entry>();
  private compiles = 0;
  private hits = 0;
  private evictions = 0;
  private compileMsTotal = 0;
  private bytes = 0;

  constructor(
    readonly capacity: number,
    readonly maxBytes = DEFAULT_KERNEL_CACHE_BYTES,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('kernel cache capacity must be a positive integer');
    if (!(maxBytes > 0)) throw new Error('kernel cache memory bound must be positive');
  }

  /**
   * Lease the kernel for `key`, creating it with `create` on a miss. `onCompile` hears the
   * duration of each first call (gpu.js compiles lazily, on the first call).
   */
  lease(key: string, create: () => CompiledKernel, onCompile: (ms: number) => void): Lease {
    let entry = this.entries.get(key);
    if (entry) {
      this.hits++;
      this.entries.delete(key); // re-insert: most recently used last
      this.entries.set(key, entry);
    } else {
      entry = { key, kernel: create(), leases: 0, evicted: false, fresh: true, bytes: 0 };
      this.entries.set(key, entry);
      this.evictOverflow();
    }
    entry.leases++;
    const held = entry;
    let released = false;
    return {
      call: (...args) => (held.fresh ? this.firstCall(held, args, onCompile) : held.kernel.run(...args)),
      release: () => {
        if (released) return;
        released = true;
        held.leases--;
        if (held.evicted && held.leases === 0) held.kernel.destroy();
      },
    };
  }

  private async firstCall(entry: Entry, args: unknown[], onCompile: (ms: number) => void): Promise<unknown> {
    entry.fresh = false;
    this.compiles++;
    const t0 = performance.now();
    let result: unknown;
    try {
      result = await entry.kernel.run(...args);
    } catch (err) {
      // a kernel that failed to build is not kept: the next request of its shape builds it anew
      this.forget(entry);
      throw err;
    } finally {
      const ms = performance.now() - t0;
      this.compileMsTotal += ms;
      onCompile(ms);
    }
    // the size of its memory is known once it has run: count it, and make room for it
    if (!entry.evicted) {
      entry.bytes = entry.kernel.keepsMemory ? kernelBytes(args, result) : 0;
      this.bytes += entry.bytes;
      this.evictOverflow();
    }
    return result;
  }

  /** Drop an entry from the cache; destroyed now, or by its last lease's release. */
  private forget(entry: Entry): void {
    if (entry.evicted) return;
    this.entries.delete(entry.key);
    this.bytes -= entry.bytes;
    entry.evicted = true;
    if (entry.leases === 0) entry.kernel.destroy();
  }

  private evictOverflow(): void {
    for (const entry of this.entries.values()) {
      if (this.entries.size <= this.capacity && this.bytes <= this.maxBytes) return;
      this.forget(entry);
      this.evictions++;
    }
  }

  stats(): KernelCacheStats {
    return {
      size: this.entries.size,
      capacity: this.capacity,
      bytes: this.bytes,
      maxBytes: this.maxBytes,
      compiles: this.compiles,
      hits: this.hits,
      evictions: this.evictions,
      compileMsTotal: this.compileMsTotal,
    };
  }

  clear(): void {
    for (const entry of this.entries.values()) {
      entry.evicted = true;
      if (entry.leases === 0) entry.kernel.destroy();
    }
    this.entries.clear();
    this.bytes = 0;
  }
}
