import { AppError } from '../errors';
import { sleep } from './time';

/**
 * Failpoints make a named point in the code fail on demand, for tests and drills: `throw` raises
 * an error, `delay` waits `ms`, `crash` kills the process on the spot (SIGKILL: no cleanup, no
 * acks, like a power cut), `off` clears it. `count` limits how many hits it fires for.
 * Names: `<saga>.<step>.before|after`, `<saga>.<step>.record` (recording the step's tag fails)
 * and `listener.<listener>.before|after`.
 * Disabled (every hit a no-op) unless ENABLE_FAILPOINTS=1.
 */
export type FailpointAction = 'throw' | 'delay' | 'crash' | 'off';

export interface FailpointSetting {
  action: FailpointAction;
  ms?: number;
  count?: number;
}

export class FailpointError extends Error {
  constructor(readonly failpoint: string) {
    super(`failpoint ${failpoint} fired`);
    this.name = 'FailpointError';
  }
}

export class Failpoints {
  private readonly settings = new Map<string, FailpointSetting>();

  constructor(readonly enabled: boolean) {}

  set(name: string, setting: FailpointSetting): void {
    if (!this.enabled) throw new AppError('NOT_FOUND', 'failpoints are disabled (ENABLE_FAILPOINTS is not 1)');
    if (setting.action === 'off') this.settings.delete(name);
    else this.settings.set(name, { ...setting });
  }

  /** `order.order_add.after=throw,pay.pay_money.before=delay:500` (the FAILPOINTS variable). */
  configureFrom(spec: string | undefined): void {
    if (!spec) return;
    for (const entry of spec.split(',')) {
      const [name, value] = entry.trim().split('=');
      const [action, ms] = value.split(':');
      this.set(name, { action: action as FailpointAction, ms: ms === undefined ? undefined : Number(ms) });
    }
  }

  list(): Record<string, FailpointSetting> {
    return Object.fromEntries(this.settings);
  }

  /** Whether a failpoint is set (the engine keeps apart what it would otherwise do in one transaction). */
  isSet(name: string): boolean {
    return this.enabled && this.settings.has(name);
  }

  clear(): void {
    this.settings.clear();
  }

  async hit(name: string): Promise<void> {
    if (!this.enabled) return;
    const setting = this.settings.get(name);
    if (!setting) return;
    if (setting.count !== undefined) {
      setting.count -= 1;
      if (setting.count <= 0) this.settings.delete(name);
    }
    switch (setting.action) {
      case 'throw':
        throw new FailpointError(name);
      case 'delay':
        await sleep(setting.ms ?? 1000);
        return;
      case 'crash':
        process.kill(process.pid, 'SIGKILL');
        await sleep(60_000); // never reached: the signal is delivered first
        return;
      case 'off':
        return;
    }
  }
}
