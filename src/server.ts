import { buildApp } from './app.js';
import { Engine } from './engine/engine.js';
import { Errors, retryAfter } from './http/errors.js';
import { JsonWorkers } from './http/json-workers.js';
import { ConfigError, loadConfig, unknownSettings } from './runtime/config.js';
import { MALLOC_TUNABLES, mallocTuning } from './runtime/malloc.js';

/** After the grace period and the abort, how long answers get to leave before their connections close. */
const CUT_OFF_AFTER_MS = 1000;
/** ... and before a hard exit, if stopping the engine hangs. */
const FORCE_EXIT_AFTER_MS = 3000;
/** setTimeout fires at once for a delay over 2^31 − 1 ms: a grace near that bound must not turn into an immediate exit */
const timerMs = (ms: number) => Math.min(ms, 2 ** 31 - 1);

/** A reason the service cannot start that the operator can act on (a backend, the address): one line, not a stack. */
class CannotStart extends Error {}

async function orCannotStart<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw new CannotStart(`${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** Start the service: config from the environment, engine, app, listen; close gracefully on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  const config = loadConfig();
  // the JSON threads load and warm up on another core while the engine probes its backends,
  // so the first large body does not wait for them
  const jsonWorkers = new JsonWorkers(config.jsonOffload);
  jsonWorkers.start();
  const engine = await orCannotStart('the compute engine cannot start', () =>
    Engine.create({
      backend: config.backend,
      kernelCacheCapacity: config.kernelCacheCapacity,
      kernelCacheBytes: config.kernelCacheBytes,
      webasmThreads: config.webasmThreads,
      thresholds: config.thresholds,
      requireGpu: config.requireGpu,
    }),
  );
  const app = await buildApp({ config, engine, jsonWorkers });
  for (const name of unknownSettings()) {
    app.log.warn({ variable: name }, `${name} is not a setting of gradserve and is ignored (README, "Configuration" lists them)`);
  }
  if (mallocTuning() === 'default') {
    app.log.warn(
      { recommended: `GLIBC_TUNABLES=${MALLOC_TUNABLES}` },
      "glibc malloc runs with its defaults: large requests fault in fresh memory each time (an L request took 1.5 times as long); start with 'npm start', or set GLIBC_TUNABLES as recommended",
    );
  }
  if (config.warmup.length > 0) {
    const warm = await engine.warmUp(config.warmup);
    app.log.info({ shapes: config.warmup.length, kernels: warm.kernels, compileMs: Math.round(warm.ms) }, 'warmed up');
  }

  /** engine.prime(), running once the service is ready (shutdown waits for it to stop) */
  let priming: Promise<void> = Promise.resolve();
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: finishing in-flight requests');
    // At the end of the grace period, abandon what is still computing: those requests get a
    // 503 that tells their clients to retry elsewhere, and close() can finish.
    const giveUp = setTimeout(() => {
      app.log.warn({ graceMs: config.shutdownGraceMs, ...app.computeGate.stats() }, 'grace period over; abandoning in-flight compute');
      app.computeGate.abortAll(retryAfter(new Errors.ShuttingDown(), 1));
    }, config.shutdownGraceMs);
    giveUp.unref();
    // a client that does not read its answer must not hold the process open
    const cutOff = setTimeout(
      () => {
        const cut = app.connections.cutOff();
        if (cut > 0) app.log.warn({ connections: cut }, 'answers not taken within the grace period; connections closed');
      },
      timerMs(config.shutdownGraceMs + CUT_OFF_AFTER_MS),
    );
    cutOff.unref();
    const force = setTimeout(
      () => {
        app.log.error('still not stopped after the grace period; exiting');
        process.exit(1);
      },
      timerMs(config.shutdownGraceMs + FORCE_EXIT_AFTER_MS),
    );
    force.unref();
    await app.close(); // stops accepting, waits for in-flight requests
    await app.connections.drained(); // every answer's last byte has left
    await app.computeGate.idle(); // abandoned work stops at its next kernel; then free the kernels
    engine.stopPriming();
    await priming;
    await engine.close();
    app.log.info('stopped');
    process.exit(0);
  };
  // a step of shutdown that fails must still end the process, with a line saying why
  const stop = (signal: string) =>
    shutdown(signal).catch((err: unknown) => {
      app.log.error({ err }, 'shutdown failed');
      process.exit(1);
    });

  await orCannotStart(`cannot listen on ${config.host} port ${config.port} (HOST, PORT)`, () =>
    app.listen({ port: config.port, host: config.host }),
  );
  // only now: a signal during start-up ends the process at once (nothing is served yet),
  // rather than closing the app under a listen() still under way
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  const { backends, gpu } = engine.info();
  app.log.info({ backend: engine.choice, backends, gpu, docs: '/docs' }, 'gradserve ready');
  priming = engine.prime().then(
    (primed) => app.log.debug(primed, primed.stopped ? 'priming stopped by shutdown' : 'primed the kernel compiler'),
    (err: unknown) => app.log.warn({ err }, 'priming the kernel compiler failed; requests compile as they come'),
  );
}

main().catch((err: unknown) => {
  // a setting's mistake is the operator's to fix: its message, not a stack trace (LOG_LEVEL=debug adds the cause's)
  if (err instanceof ConfigError || err instanceof CannotStart) {
    console.error(`gradserve: ${err.message}`);
    if (err.cause && /^(debug|trace)$/.test(process.env.LOG_LEVEL ?? '')) console.error(err.cause);
  } else console.error(err);
  process.exit(1);
});
