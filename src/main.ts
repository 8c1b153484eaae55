import { startApp, type App } from './app';
import { ConfigError, loadConfig, type Role } from './config';
import { createLogger, errorMessage } from './observability/logger';

/**
 * `node dist/main.js [all|api|worker]`: the whole service in one process (default), or one role,
 * so several API processes and several workers can run side by side.
 */
const ROLES: Role[] = ['all', 'api', 'worker'];

async function main(): Promise<void> {
  const role = (process.argv[2] ?? 'all') as Role;
  if (!ROLES.includes(role)) {
    process.stderr.write(`Unknown role "${role}": use one of ${ROLES.join(', ')}\n`);
    process.exit(2);
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.LOG_LEVEL, { role });
  let app: App | null = null;
  let stopping = false;

  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutdown requested', { signal });
    const timer = setTimeout(() => {
      logger.error('shutdown timed out, exiting', { timeoutMs: config.SHUTDOWN_TIMEOUT_MS });
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    try {
      await app?.stop();
      process.exit(0);
    } catch (err) {
      logger.error('shutdown failed', { error: errorMessage(err) });
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => logger.error('unhandled rejection', { error: errorMessage(err), stack: (err as Error)?.stack }));

  app = await startApp(config, role, { logger });
  if (stopping) await app.stop();
}

main().catch((err) => {
  process.stderr.write(`seat-saga failed to start: ${errorMessage(err)}\n`);
  process.exit(1);
});
