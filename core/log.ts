import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs (one object per line) for machines; readable lines when a person is
 * watching a terminal. LOG_LEVEL picks the level (default info; tests default to silent).
 */
export function createLogger(options: { name?: string; level?: string; pretty?: boolean } = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');
  const pretty = options.pretty ?? (process.stdout.isTTY && process.env.LOG_FORMAT !== 'json');
  return pino({
    name: options.name ?? 'sluice',
    level,
    ...(pretty
      ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } }
      : {}),
  });
}

export const silentLogger: Logger = pino({ level: 'silent' });
