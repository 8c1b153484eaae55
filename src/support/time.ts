/** The clock is a parameter wherever time matters, so tests can reason about it. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
