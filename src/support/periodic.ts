import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';

/**
 * Runs `task` every `intervalMs`, never two passes at once; `stop()` waits for the pass in
 * progress. A failing pass is logged and the next one runs as usual.
 */
export class Periodic {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = true;

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly task: () => Promise<void>,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  /** Runs a pass (or waits for the one in progress). */
  private async runPass(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.task()
      .catch((err) => {
        this.logger.warn(`${this.name} pass failed`, { task: this.name, error: errorMessage(err) });
      })
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.running) await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(async () => {
      await this.runPass();
      this.schedule();
    }, this.intervalMs);
    this.timer.unref();
  }
}
