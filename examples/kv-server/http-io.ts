// The HTTP plumbing of the API: JSON answers, bounded request bodies, typed 4xx errors.
import type { IncomingMessage, ServerResponse } from "node:http";

/** An answer other than success, thrown by a route and turned into `{"error","code",...}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: err.message, code: err.code, ...err.extra }, err.headers);
}

/**
 * Past this many bytes, the rest of an oversized body is not even read: the answer goes
 * out at once and the connection is closed (the client may then see a reset, not the 413).
 */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024;

/**
 * Reads the request body, keeping at most `limitBytes` of it in memory. A larger body is
 * refused with 413 once it has been read to its end and discarded, because a client that
 * is still sending when the server answers and closes often sees only a broken pipe; one
 * that is larger than MAX_DISCARD_BYTES (declared or actual) is refused at once.
 */
export function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const tooLarge = (close: boolean): HttpError =>
    new HttpError(413, "BODY_TOO_LARGE", `request body is larger than ${limitBytes} bytes`, {}, close ? { connection: "close" } : {});
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > MAX_DISCARD_BYTES) return Promise.reject(tooLarge(true));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let over = declared > limitBytes;
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > MAX_DISCARD_BYTES) {
        cleanup();
        reject(tooLarge(true));
        return;
      }
      if (total > limitBytes) {
        over = true;
        chunks.length = 0; // from here on the body is only counted
      }
      if (!over) chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      if (over) reject(tooLarge(false));
      else resolve(Buffer.concat(chunks, total));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new HttpError(400, "BAD_REQUEST", `request body could not be read: ${err.message}`));
    };
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/** Parses a body that must be a JSON object. @throws HttpError 400 */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new HttpError(400, "INVALID_JSON", `request body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, "INVALID_JSON", "request body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

/** A field that must be present and a string (or, when `nullable`, null). @throws HttpError 400 */
export function stringField(obj: Record<string, unknown>, name: string, nullable: boolean): string | null {
  if (!Object.hasOwn(obj, name)) {
    throw new HttpError(400, "MISSING_FIELD", `request body needs "${name}"${nullable ? " (a string, or null for absent)" : " (a string)"}`);
  }
  const v = obj[name];
  if (typeof v === "string" || (nullable && v === null)) return v;
  throw new HttpError(400, "INVALID_FIELD", `"${name}" must be a string${nullable ? " or null" : ""}, got ${v === null ? "null" : typeof v}`);
}
