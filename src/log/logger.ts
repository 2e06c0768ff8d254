import winston from 'winston';

/**
 * Structured logs to stderr (one JSON object a line), so journald and log
 * shippers can index sandbox and container IDs as fields.
 */
export type Logger = winston.Logger;

export function createLogger(level: string, format: 'json' | 'text' = 'json'): Logger {
  const formats =
    format === 'json'
      ? winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), winston.format.json())
      : winston.format.combine(winston.format.timestamp(), winston.format.simple());
  return winston.createLogger({
    level,
    format: formats,
    transports: [
      new winston.transports.Console({
        stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'],
      }),
    ],
  });
}

/** A logger that drops everything: for unit tests of code that takes one. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
