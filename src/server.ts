import { buildApp } from './app.js';
import { Engine } from './engine/engine.js';
import { loadConfig } from './runtime/config.js';

/** Start the service: config from the environment, engine, app, listen; close gracefully on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  const config = loadConfig();
  const engine = await Engine.create({ backend: config.backend, kernelCacheSize: config.kernelCacheSize });
  const app = await buildApp({ config, engine });

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => {
      app.log.error({ graceMs: config.shutdownGraceMs }, 'shutdown grace period over; exiting');
      process.exit(1);
    }, config.shutdownGraceMs);
    force.unref();
    await app.close(); // stops accepting, waits for in-flight requests
    engine.close();
    app.log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  await app.listen({ port: config.port, host: config.host });
  app.log.info({ backend: engine.backendName, docs: '/docs' }, 'gradserve ready');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
