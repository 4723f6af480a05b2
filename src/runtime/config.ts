import { z } from 'zod';
import { DEFAULT_CPU_MAX_WORK, DEFAULT_GPU_MIN_WORK, type Thresholds } from '../engine/dispatch.js';
import { DEFAULT_KERNEL_CACHE_BYTES } from '../engine/kernel-cache.js';
import { ACTIVATIONS, type Activation, BACKEND_CHOICES, type WarmupShape } from '../engine/types.js';
import { usableCpus } from './cpus.js';
import { LAYERS_CEILING, type Limits, overLimit } from './limits.js';

/** A network shape to compile at start-up: `2,4,1x4` or `64,128,128,1x1024:relu` (tanh by default). */
const WARMUP_SHAPE = /^(\d+(?:,\d+)+)x(\d+)(?::(\w+))?$/;

/**
 * GRADSERVE_WARMUP: none by default. The engine primes gpu.js's code generator once the
 * service is ready instead (Engine.prime): compiling a network before listening cost start-up
 * 137 ms for 14 ms off M's first request (bench/RESULTS.md, "Compile cost").
 */
const DEFAULT_WARMUP = 'none';

/** GRADSERVE_WARMUP: shapes separated by spaces or semicolons; empty or `none` for none. */
const Warmup = z
  .string()
  .default(DEFAULT_WARMUP)
  .transform((text, ctx): WarmupShape[] => {
    const shapes: WarmupShape[] = [];
    if (text.trim() === 'none') return shapes;
    for (const item of text.split(/[\s;]+/).filter(Boolean)) {
      const m = WARMUP_SHAPE.exec(item);
      const activation = (m?.[3] ?? 'tanh') as Activation;
      const widths = (m?.[1] ?? '').split(',').map(Number);
      if (!m || !ACTIVATIONS.includes(activation) || widths.some((w) => w < 1) || Number(m[2]) < 1) {
        ctx.addIssue({ code: 'custom', message: `"${item}" is not widths×batch[:activation], e.g. 2,4,1x4 or 64,128,1x1024:relu` });
        return z.NEVER;
      }
      shapes.push({ widths, batch: Number(m[2]), activation });
    }
    return shapes;
  });

const CPUS = usableCpus();
/** the most threads of each kind, whether set or taken from the CPUs */
const MAX_WEBASM_THREADS = 256;
const MAX_JSON_WORKERS = 64;

/**
 * GRADSERVE_JSON_WORKERS's default: a third of the CPUs, at least one. An M request's JSON
 * (parsing its body, writing its answer) costs its thread 14 ms of CPU, 19.5 with a gzipped
 * answer: 40–46% of the request's CPU on the 2-core machine of bench/RESULTS.md, where a
 * second thread gained nothing measurable. One thread caps such requests at 50–70 a second
 * whatever the cores; a third of them leaves the rest to the engine's threads.
 */
export const jsonWorkersFor = (cpus: number): number => Math.min(MAX_JSON_WORKERS, Math.max(1, Math.ceil(cpus / 3)));

const DECIMAL = /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i;

/**
 * A number written in decimal (`8080`, `4e9`): z.coerce.number() alone would also read `0x10`,
 * `0b1`, `Infinity` and blanks (as 0, so `PORT=" "` would pick a random port).
 */
const decimal = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (typeof v === 'string' && DECIMAL.test(v) ? Number(v) : v), schema);

/** A duration for a timer: Node fires any delay over 2³¹ − 1 ms (24.8 days) after 1 ms. */
const Milliseconds = decimal(
  z
    .number()
    .int()
    .positive()
    .max(2 ** 31 - 1, 'at most 2147483647 (24.8 days, the longest timer Node keeps)'),
);

/** Every setting comes from the environment, read and validated here and nowhere else. */
const EnvSchema = z.object({
  PORT: decimal(z.number().int().min(0).max(65535)).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GRADSERVE_BACKEND: z.enum(BACKEND_CHOICES).default('auto'),
  GRADSERVE_CPU_MAX_WORK: decimal(z.number().int().min(0)).default(DEFAULT_CPU_MAX_WORK),
  GRADSERVE_GPU_MIN_WORK: decimal(z.number().int().min(0)).default(DEFAULT_GPU_MIN_WORK),
  GRADSERVE_REQUIRE_GPU: z
    .enum(['0', '1'])
    .default('0')
    .transform((v) => v === '1'),
  GRADSERVE_BODY_LIMIT: decimal(z.number().int().positive()).default(64 * 1024 * 1024),
  GRADSERVE_KERNEL_CACHE_SIZE: decimal(z.number().int().positive()).default(64),
  GRADSERVE_KERNEL_CACHE_BYTES: decimal(z.number().int().positive()).default(DEFAULT_KERNEL_CACHE_BYTES),
  GRADSERVE_WEBASM_THREADS: decimal(z.number().int().positive().max(MAX_WEBASM_THREADS)).default(Math.min(CPUS, MAX_WEBASM_THREADS)),
  GRADSERVE_SHUTDOWN_GRACE_MS: Milliseconds.default(10_000),
  GRADSERVE_MAX_TRAIN_STEPS: decimal(z.number().int().positive()).default(100_000),
  GRADSERVE_MAX_TRAIN_WORK: decimal(z.number().int().positive()).default(1e9),
  GRADSERVE_MAX_INIT_PARAMS: decimal(z.number().int().positive()).default(4 * 1024 * 1024),
  GRADSERVE_MAX_LAYERS: decimal(z.number().int().positive().max(LAYERS_CEILING, `at most ${LAYERS_CEILING}`)).default(32),
  GRADSERVE_MAX_WIDTH: decimal(z.number().int().positive()).default(8192),
  GRADSERVE_MAX_BATCH: decimal(z.number().int().positive()).default(65_536),
  GRADSERVE_MAX_WORK: decimal(z.number().int().positive()).default(4e9),
  GRADSERVE_MAX_ACTIVATIONS: decimal(z.number().int().positive()).default(2 ** 24),
  GRADSERVE_MAX_CONCURRENCY: decimal(z.number().int().positive()).default(2),
  GRADSERVE_MAX_QUEUE: decimal(z.number().int().min(0)).default(256),
  GRADSERVE_READ_AHEAD: decimal(z.number().int().min(0)).default(8),
  GRADSERVE_REQUEST_TIMEOUT_MS: Milliseconds.default(30_000),
  GRADSERVE_MIN_UPLOAD_RATE: decimal(z.number().int().min(0)).default(64 * 1024),
  GRADSERVE_UPLOAD_GRACE_MS: Milliseconds.default(5000),
  GRADSERVE_WARMUP: Warmup,
  GRADSERVE_COMPRESS_RESPONSES: z
    .enum(['0', '1'])
    .default('1')
    .transform((v) => v === '1'),
  GRADSERVE_JSON_WORKERS: decimal(z.number().int().min(0).max(MAX_JSON_WORKERS)).default(jsonWorkersFor(CPUS)),
  GRADSERVE_JSON_OFFLOAD_BYTES: decimal(z.number().int().min(0)).default(64 * 1024),
});

/** The variables loadConfig reads, for tools that check a deployment's environment. */
export const ENV_VARS = Object.keys(EnvSchema.shape);

/** How much compute runs at once, how much may wait, and for how long. */
export interface Admission {
  maxConcurrency: number;
  /** requests admitted to wait for a compute slot; beyond them, 503 */
  maxQueue: number;
  /** of those waiting, how many have their bodies read and parsed ahead (the rest wait unread) */
  readAhead: number;
  requestTimeoutMs: number;
  /** a body being read must arrive this fast (bytes a second, after uploadGraceMs), or get a 408; 0: no minimum */
  minUploadRate: number;
  uploadGraceMs: number;
}

/** JSON bodies and answers this large are parsed, validated and written off the event loop. */
export interface JsonOffload {
  /** worker threads; 0 keeps all JSON work on the event loop */
  workers: number;
  minBytes: number;
}

export interface Config {
  port: number;
  host: string;
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  backend: z.infer<typeof EnvSchema>['GRADSERVE_BACKEND'];
  /** with backend auto: the most work (batch × Σ in×out) sent to cpu, the least sent to a GPU */
  thresholds: Thresholds;
  /** start only with webgpu on a hardware adapter */
  requireGpu: boolean;
  kernelCacheCapacity: number;
  /** the most memory the cached kernels may keep; the least recently used beyond it are freed */
  kernelCacheBytes: number;
  /** webasm's worker threads */
  webasmThreads: number;
  /** compiled before the server listens */
  warmup: WarmupShape[];
  shutdownGraceMs: number;
  limits: Limits;
  admission: Admission;
  jsonOffload: JsonOffload;
  /** gzip or deflate answers for clients that accept it (request bodies are always decompressed) */
  compressResponses: boolean;
}

/** zod's message, but "not a number" for text given where a number is expected (and "too large" for 1e400). */
const reason = (issue: z.core.$ZodIssue, given: string | undefined): string => {
  if (issue.code !== 'invalid_type' || issue.expected !== 'number') return issue.message;
  return given !== undefined && DECIMAL.test(given) ? 'too large' : 'not a number';
};

/** A setting the service cannot start with; its message says which and why. */
export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // a variable set to nothing is unset (as in `GRADSERVE_MAX_LAYERS= npm start`), except
  // GRADSERVE_WARMUP, where empty means no warm-up
  const given = Object.fromEntries(Object.entries(env).filter(([k, v]) => v !== '' || k === 'GRADSERVE_WARMUP'));
  const parsed = EnvSchema.safeParse(given);
  if (!parsed.success) {
    // custom messages (GRADSERVE_WARMUP's) quote the part that is wrong themselves
    const value = (i: z.core.$ZodIssue) => {
      const given = env[String(i.path[0])];
      return given === undefined || i.code === 'custom' ? '' : ` (given ${JSON.stringify(given)})`;
    };
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}${value(i)}: ${reason(i, env[String(i.path[0])])}`).join('; ');
    throw new ConfigError(`invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  const config: Config = {
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    backend: e.GRADSERVE_BACKEND,
    thresholds: { cpuMaxWork: e.GRADSERVE_CPU_MAX_WORK, gpuMinWork: e.GRADSERVE_GPU_MIN_WORK },
    requireGpu: e.GRADSERVE_REQUIRE_GPU,
    kernelCacheCapacity: e.GRADSERVE_KERNEL_CACHE_SIZE,
    kernelCacheBytes: e.GRADSERVE_KERNEL_CACHE_BYTES,
    webasmThreads: e.GRADSERVE_WEBASM_THREADS,
    warmup: e.GRADSERVE_WARMUP,
    shutdownGraceMs: e.GRADSERVE_SHUTDOWN_GRACE_MS,
    limits: {
      bodyBytes: e.GRADSERVE_BODY_LIMIT,
      layers: e.GRADSERVE_MAX_LAYERS,
      width: e.GRADSERVE_MAX_WIDTH,
      batch: e.GRADSERVE_MAX_BATCH,
      work: e.GRADSERVE_MAX_WORK,
      activations: e.GRADSERVE_MAX_ACTIVATIONS,
      trainSteps: e.GRADSERVE_MAX_TRAIN_STEPS,
      trainWork: e.GRADSERVE_MAX_TRAIN_WORK,
      initParams: e.GRADSERVE_MAX_INIT_PARAMS,
    },
    admission: {
      maxConcurrency: e.GRADSERVE_MAX_CONCURRENCY,
      maxQueue: e.GRADSERVE_MAX_QUEUE,
      readAhead: e.GRADSERVE_READ_AHEAD,
      requestTimeoutMs: e.GRADSERVE_REQUEST_TIMEOUT_MS,
      minUploadRate: e.GRADSERVE_MIN_UPLOAD_RATE,
      uploadGraceMs: e.GRADSERVE_UPLOAD_GRACE_MS,
    },
    jsonOffload: { workers: e.GRADSERVE_JSON_WORKERS, minBytes: e.GRADSERVE_JSON_OFFLOAD_BYTES },
    compressResponses: e.GRADSERVE_COMPRESS_RESPONSES,
  };
  // a warm-up shape the service would refuse as a request is a mistake, and may not fit in memory
  for (const shape of config.warmup) {
    const over = overLimit(shape, config.limits);
    if (over !== undefined) {
      const name = `${shape.widths.join(',')}x${shape.batch}`;
      throw new ConfigError(`invalid configuration: GRADSERVE_WARMUP: "${name}": ${over}`);
    }
  }
  return config;
}

/** Variables this project's own tools read (lesson scripts, compose, test switches), not the service. */
const TOOL_VARS = [
  'GRADSERVE_URL',
  'GRADSERVE_IMAGE',
  'GRADSERVE_GPU_IMAGE',
  'GRADSERVE_PUBLISH',
  'GRADSERVE_REQUIRE_WEBGPU',
  'GRADSERVE_REQUIRE_HEADLESSGL',
  'GRADSERVE_CACHE',
];

/**
 * GRADSERVE_* variables nothing here reads: most likely misspelt, and otherwise silently
 * ignored. Not the project's tools' variables, nor those Kubernetes sets for a Service named
 * gradserve (GRADSERVE_SERVICE_HOST, GRADSERVE_PORT_8080_TCP, ...).
 */
export function unknownSettings(env: NodeJS.ProcessEnv = process.env): string[] {
  const serviceLink = /^GRADSERVE_(SERVICE_|PORT$|PORT_)/;
  const known = (k: string) => ENV_VARS.includes(k) || TOOL_VARS.includes(k) || serviceLink.test(k);
  return Object.keys(env).filter((k) => k.startsWith('GRADSERVE_') && !known(k));
}

/** Defaults, for tests and tools that build the app without an environment. */
export const defaultConfig = (): Config => loadConfig({});
