/**
 * Where raftkit writes diagnostics. Structured: a short message plus optional fields.
 * Plug in pino, winston or the console; the default discards everything. Methods must not
 * throw (a throw from a logger call lands wherever the call was made).
 *
 * @example
 * ```ts
 * import pino from "pino";
 * const log = pino();
 * const logger: Logger = {
 *   debug: (msg, fields) => log.debug(fields ?? {}, msg),
 *   info: (msg, fields) => log.info(fields ?? {}, msg),
 *   warn: (msg, fields) => log.warn(fields ?? {}, msg),
 *   error: (msg, fields) => log.error(fields ?? {}, msg),
 * };
 * ```
 * @public
 */
export interface Logger {
  /**
   * Detail for debugging the protocol; high volume.
   * @param message - A short, constant description of the event.
   * @param fields - Structured context (node id, index, peer, error text).
   */
  debug(message: string, fields?: Record<string, unknown>): void;
  /**
   * Notable, expected events (a store opened, a connection established).
   * @param message - A short, constant description of the event.
   * @param fields - Structured context.
   */
  info(message: string, fields?: Record<string, unknown>): void;
  /**
   * Something went wrong and was handled (a malformed frame, a refused connection).
   * @param message - A short, constant description of the event.
   * @param fields - Structured context.
   */
  warn(message: string, fields?: Record<string, unknown>): void;
  /**
   * Something went wrong that stops a component (a storage write failed, a node stops).
   * @param message - A short, constant description of the event.
   * @param fields - Structured context.
   */
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
 * and errors), prefixed with `prefix`: `raftkit info message {"field":1}`.
 * @param prefix - The first word of every line.
 * @returns The logger.
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
