// JSON-lines logging on stderr (one object per line: level, time, msg, fields), level from OCTET_LOG_LEVEL.
// stdout is reserved for the single "ready" line scripts wait for.

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function errorFields(v: unknown): unknown {
  if (v instanceof Error) {
    const code = (v as { code?: unknown }).code;
    return { name: v.name, message: v.message, ...(code !== undefined ? { code } : {}) };
  }
  return v;
}

export function parseLogLevel(s: string | undefined, fallback: LogLevel = "info"): LogLevel {
  return s !== undefined && s in ORDER ? (s as LogLevel) : fallback;
}

/** A logger writing JSON lines to `write` (default: stderr). */
export function createLogger(opts: { level?: LogLevel; base?: Record<string, unknown>; write?: (line: string) => void } = {}): Logger {
  const level = ORDER[opts.level ?? parseLogLevel(process.env.OCTET_LOG_LEVEL)];
  const base = opts.base ?? {};
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < level) return;
    const rec: Record<string, unknown> = { level: lvl, time: Date.now(), ...base, msg };
    if (fields) for (const [k, v] of Object.entries(fields)) rec[k] = errorFields(v);
    let line: string;
    try {
      line = JSON.stringify(rec);
    } catch {
      line = JSON.stringify({ level: lvl, time: rec.time, msg });
    }
    write(`${line}\n`);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ level: opts.level ?? parseLogLevel(process.env.OCTET_LOG_LEVEL), base: { ...base, ...fields }, write }),
  };
}
