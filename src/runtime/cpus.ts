import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Reads a file's text, or undefined when it is not there (the cgroup files differ between hosts). */
export type ReadText = (path: string) => string | undefined;

const readText: ReadText = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/**
 * The CPUs this process can use: the scheduler's affinity (what `os.availableParallelism()`
 * counts), capped by a cgroup CPU quota, rounded up. A container's CPU limit (`docker run
 * --cpus`, a Kubernetes `limits.cpu`, systemd's CPUQuota) is such a quota, and Node 20's
 * availableParallelism() does not see it: on a 64-core host a 2-CPU container would start
 * 64 compute threads and spend its quota switching between them.
 */
export function usableCpus(read: ReadText = readText, affinity = availableParallelism()): number {
  const quota = cgroupCpuQuota(read);
  return Math.max(1, Math.min(affinity, quota === undefined ? affinity : Math.ceil(quota)));
}

/** The CPU quota (CPUs' worth of time per period) of this process's cgroup and its parents, if any. */
function cgroupCpuQuota(read: ReadText = readText): number | undefined {
  const quotas: number[] = [];
  // cgroup v2: "0::/path" in /proc/self/cgroup; cpu.max is "max 100000" or "200000 100000".
  // In a container's cgroup namespace the path is "/", and the limit is on the root.
  const v2Path = /^0::(\/.*)$/m.exec(read('/proc/self/cgroup') ?? '')?.[1];
  if (v2Path !== undefined) {
    for (let dir = v2Path; ; dir = dir.slice(0, dir.lastIndexOf('/')) || '/') {
      const [quota, period] = (read(`/sys/fs/cgroup${dir === '/' ? '' : dir}/cpu.max`) ?? '').trim().split(/\s+/);
      if (quota && quota !== 'max' && Number(period) > 0) quotas.push(Number(quota) / Number(period));
      if (dir === '/') break;
    }
  }
  // cgroup v1, as mounted in a container: a quota of -1 is none
  for (const dir of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct']) {
    const quota = Number(read(`${dir}/cpu.cfs_quota_us`));
    const period = Number(read(`${dir}/cpu.cfs_period_us`));
    if (quota > 0 && period > 0) quotas.push(quota / period);
  }
  const valid = quotas.filter((q) => Number.isFinite(q) && q > 0);
  return valid.length > 0 ? Math.min(...valid) : undefined;
}
