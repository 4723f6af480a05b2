/**
 * npm run test:cluster: three gradserve processes on loopback behind nginx (Debian's), a
 * sharded value-and-grad of a batch of 4,096 through the balancer against one request to one
 * replica and the float64 reference, and a replica SIGKILLed in the middle of sharded calls.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ValueAndGradRequest, type ValueAndGradResponse, valueAndGradSharded } from '../../client/index.js';
import { assertSameAnswer } from '../client/compare.js';
import { randomCase, rng } from '../helpers.js';
import { type Cluster, startCluster } from './cluster.js';

// [32, 128, 128, 2] × 4096: ~85 M units of work (batch × Σ in×out), a tenth of a second or so
// for one replica; two outputs, so `mean` divides by batch × 2.
const c = randomCase(rng(4096), { widths: [32, 128, 128, 2], batch: 4096, activation: 'tanh' });
const request = c as ValueAndGradRequest;

async function single(url: string): Promise<ValueAndGradResponse> {
  const res = await fetch(`${url}/value-and-grad`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(request),
  });
  assert.equal(res.status, 200);
  return (await res.json()) as ValueAndGradResponse;
}

describe('cluster: 3 replicas behind nginx', { timeout: 120_000 }, () => {
  let cluster: Cluster;
  let one: ValueAndGradResponse;
  before(async () => {
    cluster = await startCluster(3, { LOG_LEVEL: 'error' });
    one = await single(cluster.replicas[0]!.url);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('the balancer spreads requests over every replica', async () => {
    // Each replica counts its own requests in /metrics; ask through the balancer and read them directly.
    const count = async (url: string) => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return [...text.matchAll(/^gradserve_http_requests_total\{[^}]*route="\/healthz"[^}]*\} (\d+)/gm)].reduce(
        (s, m) => s + Number(m[1]),
        0,
      );
    };
    const before = await Promise.all(cluster.replicas.map((r) => count(r.url)));
    for (let i = 0; i < 9; i++) assert.equal((await fetch(`${cluster.url}/healthz`)).status, 200);
    const afterCounts = await Promise.all(cluster.replicas.map((r) => count(r.url)));
    for (const [i, n] of afterCounts.entries()) assert.ok(n > before[i]!, `replica ${i} got none of 9 requests`);
  });

  it('sharded through the balancer = one request to one replica = the float64 reference', async () => {
    const got = await valueAndGradSharded(cluster.url, request, { shards: 8 });
    assertSameAnswer(got, one, c);
  });

  it('completes through the balancer when a replica is SIGKILLed mid-call', async (t) => {
    const victim = cluster.replicas[2]!;
    let answered = 0;
    // Kill the replica as soon as the first shard has answered: the call is then under way,
    // with shards computing on every replica.
    const killing: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (++answered === 1) victim.child.kill('SIGKILL');
      return res;
    };
    const retries: string[] = [];
    const got = await valueAndGradSharded(cluster.url, request, {
      shards: 24,
      retries: 8,
      maxRetryDelayMs: 2000,
      fetch: killing,
      onRetry: (r) => retries.push(r.reason),
    });
    assert.ok(answered >= 24, 'every shard answered');
    // The kill cut requests off: nginx saw them fail (and passed them on), or the client retried them.
    const log = cluster.balancerLog();
    const cut = /prematurely closed|Connection refused|reset by peer/.test(log);
    assert.ok(cut || retries.length > 0, `no request was cut off by the kill:\n${log.slice(-2000)}`);
    t.diagnostic(`client retries: ${retries.length}; nginx passed cut-off requests on: ${cut}`);
    assertSameAnswer(got, one, c);
    await new Promise((r) => (victim.child.exitCode !== null || victim.child.signalCode !== null ? r(null) : victim.child.once('exit', r)));
    // and the balancer keeps serving on the two left
    assertSameAnswer(await valueAndGradSharded(cluster.url, request, { shards: 6 }), one, c);
  });

  it('without a balancer: the client moves shards off a replica killed mid-call, and off a dead one', async () => {
    // Replica 2 is dead already (connection refused); replica 1 is killed once a shard has answered.
    const [a, b, dead] = cluster.replicas;
    let answered = 0;
    const killing: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (++answered === 1) b!.child.kill('SIGKILL');
      return res;
    };
    const retries: { url: string; reason: string }[] = [];
    const got = await valueAndGradSharded([a!.url, b!.url, dead!.url], request, {
      shards: 6,
      retries: 6,
      maxRetryDelayMs: 2000,
      fetch: killing,
      onRetry: (r) => retries.push(r),
    });
    assertSameAnswer(got, one, c);
    assert.ok(
      retries.some((r) => r.url.startsWith(dead!.url) && /network error/.test(r.reason)),
      `retried off the dead replica: ${JSON.stringify(retries)}`,
    );
  });
});
