/**
 * Where raftkit writes diagnostics. Structured: a short message plus optional fields.
 * Plug in pino, winston or the console; the default discards everything.
 * @public
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const discard = (): void => {};

/**
 * A {@link Logger} that discards everything: the default.
 * @public
 */
export const silentLogger: Logger = { debug: discard, info: discard, warn: discard, error: discard };

/**
 * A {@link Logger} that writes one line per record to the console (stderr for warnings
 * and errors), prefixed with `prefix`.
 * @public
 */
export function consoleLogger(prefix = "raftkit"): Logger {
  const line = (level: string, message: string, fields?: Record<string, unknown>): string =>
    `${prefix} ${level} ${message}${fields && Object.keys(fields).length > 0 ? " " + JSON.stringify(fields) : ""}`;
  return {
    debug: (m, f) => console.debug(line("debug", m, f)),
    info: (m, f) => console.info(line("info", m, f)),
    warn: (m, f) => console.warn(line("warn", m, f)),
    error: (m, f) => console.error(line("error", m, f)),
  };
}
