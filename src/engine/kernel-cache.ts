/** A kernel as a backend compiled it. */
export interface CompiledKernel {
  run: (...args: unknown[]) => unknown;
  destroy: () => void;
}

interface Entry {
  key: string;
  kernel: CompiledKernel;
  leases: number;
  evicted: boolean;
  /** true until the first call, which is when gpu.js builds the kernel */
  fresh: boolean;
}

export interface KernelCacheStats {
  size: number;
  capacity: number;
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

export function kernelKey(parts: Record<string, string | number>): string {
  // once per spec (dense.ts memoizes them)
  let key = '';
  for (const k in parts) key += `${k}=${parts[k]}|`;
  return key;
}

/**
 * A bounded LRU of compiled kernels, counted. The key names the backend, the op and every
 * size and option that changes the compiled code (see kernelKey). Kernels are leased for
 * the length of a request: an entry evicted while a request still uses it is destroyed
 * when the last lease is returned, never under a running computation.
 */
export class KernelCache {
  private readonly entries = new Map<string, Entry>();
  private compiles = 0;
  private hits = 0;
  private evictions = 0;
  private compileMsTotal = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('kernel cache capacity must be a positive integer');
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
      entry = { key, kernel: create(), leases: 0, evicted: false, fresh: true };
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
    try {
      return await entry.kernel.run(...args);
    } finally {
      const ms = performance.now() - t0;
      this.compileMsTotal += ms;
      onCompile(ms);
    }
  }

  private evictOverflow(): void {
    for (const entry of this.entries.values()) {
      if (this.entries.size <= this.capacity) return;
      this.entries.delete(entry.key);
      this.evictions++;
      entry.evicted = true;
      if (entry.leases === 0) entry.kernel.destroy();
    }
  }

  stats(): KernelCacheStats {
    return {
      size: this.entries.size,
      capacity: this.capacity,
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
  }
}
