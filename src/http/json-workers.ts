import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { JsonOffload } from '../runtime/config.js';
import { exposeGcToNewThreads } from '../runtime/thread-gc.js';
import type { ListLimits } from './body-limits.js';
import { Errors } from './errors.js';
import type { PostRoute } from './schemas.js';

/** A job for a JSON worker thread (json-worker.ts) and its answer. */
export type JsonJob =
  | { id: number; kind: 'parse'; url: PostRoute; bytes: Uint8Array; limits: ListLimits }
  | { id: number; kind: 'write'; url: PostRoute; answer: unknown; gzip: boolean };
export type JsonJobResult = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: JsonJobError; message: string };
type JsonJobError = 'invalid-json' | 'invalid-request' | 'limit-exceeded' | 'internal';

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

interface Thread {
  worker: Worker;
  /** the one job it works on, if any */
  pending: Map<number, Pending & { kind: JsonJob['kind'] }>;
}

/** A job waiting for a thread; `drop` takes it out of the queue when its request's signal aborts. */
interface Queued {
  job: JsonJob;
  transfer: ArrayBuffer[];
  settle: Pending;
  signal?: AbortSignal;
  drop?: () => void;
}

// the worker is JavaScript in dist/, and TypeScript under tsx (tests, `npm run dev`): a
// worker thread does not inherit tsx's loader, so it registers it before loading the file
const SOURCE_EXT = extname(fileURLToPath(import.meta.url));
const WORKER_FILE = new URL(`./json-worker${SOURCE_EXT}`, import.meta.url);
const startWorker = (): Worker =>
  SOURCE_EXT === '.ts'
    ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_FILE.href)}); })`, {
        eval: true,
      })
    : new Worker(WORKER_FILE);

/**
 * Threads that parse and validate large request bodies, and validate and write large
 * answers, with the routes' zod schemas (see json-body.ts). Started on first use (or by
 * start()); a thread that dies fails only its own jobs and is replaced on the next one.
 */
export class JsonWorkers {
  private readonly threads: Thread[] = [];
  /** jobs waiting for a thread: each thread takes one at a time, so that a job whose request is gone can be dropped before it costs anything */
  private readonly queue: Queued[] = [];
  private nextId = 0;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly done = { parse: 0, write: 0 };

  constructor(private readonly settings: JsonOffload) {}

  /** whether a body or answer of this many bytes is worth a trip to a thread */
  offloads(bytes: number): boolean {
    return this.settings.workers > 0 && bytes >= this.settings.minBytes;
  }

  /** jobs finished (answered or refused) per kind, since start */
  stats(): { parse: number; write: number } {
    return { ...this.done };
  }

  /** Start the threads now rather than on the first large body (server start-up). */
  start(): void {
    while (this.threads.length < this.settings.workers) this.spawn();
  }

  /**
   * A validated body (tensors packed, as the route's schema transforms them); rejects with a
   * 400 that says why, or a 413 for lists longer than `limits` allow. Async, so that a thread that
   * cannot start, or a job it cannot take, fails this request alone instead of throwing into
   * the body stream's event handler. It settles when the thread is done with the body, or,
   * should `signal` abort while the body still waits for a thread, at once with its reason.
   */
  async parse(url: PostRoute, bytes: Buffer, limits: ListLimits, signal?: AbortSignal): Promise<unknown> {
    // hand the bytes over when the buffer owns its memory (large bodies do), else copy them
    const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return this.run({ id: this.nextId++, kind: 'parse', url, bytes: view, limits }, own ? [bytes.buffer as ArrayBuffer] : [], signal);
  }

  /**
   * The answer (as a ResultEncoder built it, tensors still float32) validated against the route's 200 schema and
   * written as UTF-8 JSON, gzipped if asked; dropped as parse() drops a body.
   */
  async write(url: PostRoute, answer: unknown, gzip: boolean, signal?: AbortSignal): Promise<Buffer> {
    const bytes = (await this.run({ id: this.nextId++, kind: 'write', url, answer, gzip }, [], signal)) as Uint8Array;
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Wait for the jobs under way, then end the threads. */
  async close(): Promise<void> {
    await Promise.allSettled(this.inFlight);
    await Promise.all(this.threads.splice(0).map((t) => t.worker.terminate()));
  }

  private run(job: JsonJob, transfer: ArrayBuffer[], signal?: AbortSignal): Promise<unknown> {
    signal?.throwIfAborted();
    const done = new Promise((resolve, reject) => {
      const queued: Queued = { job, transfer, settle: { resolve, reject }, signal };
      if (signal) {
        queued.drop = () => {
          const i = this.queue.indexOf(queued);
          if (i < 0) return;
          this.queue.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', queued.drop, { once: true });
      }
      this.queue.push(queued);
      this.dispatch();
    });
    this.inFlight.add(done);
    const forget = () => this.inFlight.delete(done);
    done.then(forget, forget);
    return done;
  }

  /** Hand waiting jobs to idle threads, one each. */
  private dispatch(): void {
    if (this.queue.length === 0) return;
    while (this.threads.length < this.settings.workers) this.spawn();
    for (const thread of this.threads) {
      while (thread.pending.size === 0 && this.queue.length > 0) {
        const { job, transfer, settle, signal, drop } = this.queue.shift()!;
        if (drop) signal!.removeEventListener('abort', drop);
        thread.pending.set(job.id, { ...settle, kind: job.kind });
        try {
          thread.worker.postMessage(job, transfer);
        } catch (err) {
          // a job the thread cannot take (its memory gone) fails alone
          thread.pending.delete(job.id);
          settle.reject(err as Error);
        }
      }
    }
  }

  private spawn(): void {
    exposeGcToNewThreads(); // the thread collects after large jobs
    const worker = startWorker();
    worker.unref(); // idle threads do not keep the process alive
    const thread: Thread = { worker, pending: new Map() };
    this.threads.push(thread);
    worker.on('message', (result: JsonJobResult) => {
      const p = thread.pending.get(result.id);
      if (!p) return;
      thread.pending.delete(result.id);
      this.done[p.kind]++;
      if (result.ok) p.resolve(result.value);
      else p.reject(toError(result.error, result.message));
      this.dispatch();
    });
    const fail = (why: string) => {
      const i = this.threads.indexOf(thread);
      if (i >= 0) this.threads.splice(i, 1);
      for (const p of thread.pending.values()) p.reject(new Error(`a JSON worker thread ${why}`));
      thread.pending.clear();
      this.dispatch(); // the jobs still waiting go to a new thread
    };
    worker.on('error', (err) => fail(`failed: ${err.message}`));
    worker.on('exit', (code) => fail(`exited with code ${code}`));
  }
}

function toError(kind: JsonJobError, message: string): Error {
  if (kind === 'invalid-json') return new Errors.InvalidJson(message);
  if (kind === 'limit-exceeded') return new Errors.LimitExceeded(message);
  if (kind === 'invalid-request') return new Errors.InvalidRequest(message);
  return new Error(message);
}
