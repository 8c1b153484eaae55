import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';

/**
 * What a process must undo to stop, in the order it was set up: every part that opens something
 * (a connection, a consumer, a timer, a server) registers how to close it as soon as it is open,
 * and `unwind` closes them in reverse. Start-up that fails halfway unwinds the same list, so a
 * failed start leaves nothing open.
 */
export class StopList {
  private readonly steps: Array<{ name: string; stop: () => Promise<void> | void }> = [];
  private unwinding: Promise<void> | null = null;

  constructor(private readonly logger: Logger) {}

  /** True once stopping began: start-up that is still retrying gives up. */
  get stopping(): boolean {
    return this.unwinding !== null;
  }

  push(name: string, stop: () => Promise<void> | void): void {
    this.steps.push({ name, stop });
  }

  /** Closes everything registered, last first; a step that fails is logged and the rest still run. Idempotent. */
  unwind(): Promise<void> {
    this.unwinding ??= (async () => {
      for (const { name, stop } of this.steps.reverse()) {
        try {
          await stop();
        } catch (err) {
          this.logger.warn('a part failed to stop', { part: name, error: errorMessage(err) });
        }
      }
    })();
    return this.unwinding;
  }
}
