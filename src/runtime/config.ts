import { z } from 'zod';
import { BACKENDS } from '../engine/types.js';

/** Every setting comes from the environment, read and validated here and nowhere else. */
const EnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GRADSERVE_BACKEND: z.enum(BACKENDS).default('webasm'),
  GRADSERVE_BODY_LIMIT: z.coerce
    .number()
    .int()
    .positive()
    .default(64 * 1024 * 1024),
  GRADSERVE_KERNEL_CACHE_SIZE: z.coerce.number().int().positive().default(64),
  GRADSERVE_SHUTDOWN_GRACE_MS: z.coerce.number().int().positive().default(10_000),
  GRADSERVE_MAX_TRAIN_STEPS: z.coerce.number().int().positive().default(100_000),
  GRADSERVE_MAX_TRAIN_WORK: z.coerce.number().int().positive().default(1e9),
  GRADSERVE_MAX_INIT_PARAMS: z.coerce
    .number()
    .int()
    .positive()
    .default(4 * 1024 * 1024),
});

export interface Config {
  port: number;
  host: string;
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  backend: z.infer<typeof EnvSchema>['GRADSERVE_BACKEND'];
  bodyLimit: number;
  kernelCacheSize: number;
  shutdownGraceMs: number;
  /** /train: most optimizer steps in one request */
  maxTrainSteps: number;
  /** /train: most steps × rows per step × Σ (in + 1)·out (the forward pass's multiply-adds, biases counted) in one request */
  maxTrainWork: number;
  /** /init: most parameters (weights and biases) in one response */
  maxInitParams: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  return {
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    backend: e.GRADSERVE_BACKEND,
    bodyLimit: e.GRADSERVE_BODY_LIMIT,
    kernelCacheSize: e.GRADSERVE_KERNEL_CACHE_SIZE,
    shutdownGraceMs: e.GRADSERVE_SHUTDOWN_GRACE_MS,
    maxTrainSteps: e.GRADSERVE_MAX_TRAIN_STEPS,
    maxTrainWork: e.GRADSERVE_MAX_TRAIN_WORK,
    maxInitParams: e.GRADSERVE_MAX_INIT_PARAMS,
  };
}

/** Defaults, for tests and tools that build the app without an environment. */
export const defaultConfig = (): Config => loadConfig({});
