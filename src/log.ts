/** Structured JSON logs via winston. Never pass secrets or payload bytes to these functions. */
import winston from 'winston';

export const log = winston.createLogger({
  level: process.env.SSP_LOG__LEVEL ?? 'info',
  format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  defaultMeta: { service: 'symphony-soap-proxy', pid: process.pid },
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
});

export function setLogLevel(level: string): void {
  log.level = level;
}
