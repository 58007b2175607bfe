import { pino, destination, type Logger } from "pino";

export type { Logger } from "pino";

/**
 * The default service logger: JSON lines on stderr (written synchronously, so nothing is lost when a
 * process exits right after shutdown), level from OCTET_LOG_LEVEL or "info".
 */
export function createLogger(name: string, level: string = process.env.OCTET_LOG_LEVEL ?? "info"): Logger {
  return pino({ name, level }, destination({ fd: 2, sync: true }));
}
