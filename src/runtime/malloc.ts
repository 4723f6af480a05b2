import { readFileSync } from 'node:fs';

/**
 * glibc malloc's settings for this service. glibc reads them from the environment variable
 * GLIBC_TUNABLES when a process starts, so they are set by whatever starts it: `npm start`
 * and the container image do (test/examples/readme.test.ts checks both carry this value).
 *
 * By default glibc serves each allocation over 128 KiB (a request body, its text, a decoded
 * tensor, an answer) from a fresh mmap and unmaps it when freed, and gives freed memory back
 * at the heap's top beyond 128 KiB: the next request's buffers are new pages again, and each
 * page is a page fault, 10–15 µs on the bench machine (bench/RESULTS.md, "Page faults"). An L
 * request faulted in some 24,000 pages. With allocations up to 32 MiB served from malloc's
 * heaps and up to 128 MiB of free heap kept for the next request, L over HTTP took 0.9 s
 * instead of 1.4 s; the cost is that much more resident memory between requests.
 */
export const MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728';

/** `tuned`: GLIBC_TUNABLES sets malloc's mmap threshold (ours or the operator's own); `default`: it does not; `not glibc`: another C library (musl), where the setting means nothing. */
export type MallocTuning = 'tuned' | 'default' | 'not glibc';

export function mallocTuning(env: NodeJS.ProcessEnv = process.env, glibc: boolean = runsOnGlibc()): MallocTuning {
  if (!glibc) return 'not glibc';
  return /(^|:)glibc\.malloc\.mmap_threshold=/.test(env.GLIBC_TUNABLES ?? '') ? 'tuned' : 'default';
}

let glibc: boolean | undefined;

/** Whether glibc's libc.so.6 is mapped into this process (musl's is libc.musl-<arch>.so.1); read once. */
function runsOnGlibc(): boolean {
  if (glibc === undefined) {
    try {
      glibc = /\/libc\.so\.6$/m.test(readFileSync('/proc/self/maps', 'utf8'));
    } catch {
      glibc = false; // not Linux
    }
  }
  return glibc;
}
