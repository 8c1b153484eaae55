import winston from 'winston';

export type Logger = winston.Logger;

/** JSON lines on stdout; callers add requestId / sagaId with `logger.child({...})`. */
export function createLogger(level: string, defaultMeta: Record<string, unknown> = {}): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { service: 'seat-saga', ...defaultMeta },
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: [] })],
  });
}

/** The message of anything thrown, for log fields and error columns. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
