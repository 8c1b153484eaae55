import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import { sleep } from './time';

export interface BackoffOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Stop retrying when this returns true (e.g. the process is shutting down). */
  aborted?: () => boolean;
}

/**
 * Runs `attempt` until it succeeds, waiting with exponential backoff and jitter in between and
 * logging each failure with the dependency's name, so an operator sees "waiting for mysql", not a
 * stack trace.
 */
export async function retryWithBackoff<T>(
  dependency: string,
  attempt: () => Promise<T>,
  logger: Logger,
  { initialDelayMs = 250, maxDelayMs = 10_000, aborted = () => false }: BackoffOptions = {},
): Promise<T> {
  let delay = initialDelayMs;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (aborted()) throw err;
      const waitMs = Math.round(delay * (0.8 + Math.random() * 0.4));
      logger.warn(`${dependency} unreachable, retrying`, { dependency, attempt: n, retryInMs: waitMs, error: errorMessage(err) });
      await sleep(waitMs);
      delay = Math.min(maxDelayMs, delay * 2);
    }
  }
}
