// The HTTP load generator that drives every system under test the same way: N closed-loop
// clients on one keep-alive node:http Agent (one connection per client), each sending its
// next request as soon as the previous one is answered. (undici is not installed here, so
// node:http it is.)
import { Agent, request } from "node:http";
import { quantileInPlace, sleep } from "./stats.js";

/** One request to send; `pick(i)` chooses the i-th key's path and body. */
export interface LoadTarget {
  readonly host: string;
  readonly port: number;
  readonly method: string;
  /** How many distinct requests there are; client requests cycle through them. */
  readonly variants: number;
  path(i: number): string;
  body(i: number): Buffer;
}

export interface LoadResult {
  readonly clients: number;
  readonly seconds: number;
  /** Requests answered with 2xx whose start and end fell inside the measured window. */
  readonly ops: number;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Non-2xx answers and failed requests (any time during the run, warm-up included). */
  readonly errors: number;
  /** The first error seen, for the log. */
  readonly firstError: string | null;
}

export interface Answer {
  readonly status: number;
  readonly body: string;
}

/** Sends one request and reads the whole answer. Rejects on a socket error or after `timeoutMs`. */
export function send(agent: Agent | false, host: string, port: number, method: string, path: string, body: Buffer | null, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = body === null ? {} : { "content-type": "application/json", "content-length": body.length };
    const req = request({ agent, host, port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body ?? undefined);
  });
}

/** GET or POST with a JSON body, parsed JSON back (null when the body is not JSON). */
export async function jsonRequest(url: string, method = "GET", body?: unknown, timeoutMs = 2000): Promise<{ status: number; json: unknown }> {
  const u = new URL(url);
  const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
  const answer = await send(false, u.hostname, Number(u.port), method, u.pathname + u.search, payload, timeoutMs);
  let json: unknown = null;
  try {
    json = JSON.parse(answer.body);
  } catch {
    // not JSON
  }
  return { status: answer.status, json };
}

/**
 * Runs `clients` closed-loop clients for `warmupSeconds + seconds`, measuring only the
 * last `seconds`. Each request has `timeoutMs`; after a failed request a client pauses
 * 10 ms so that a refusing server does not turn the loop into a busy spin.
 */
export async function runLoad(target: LoadTarget, clients: number, seconds: number, warmupSeconds: number, timeoutMs = 10_000): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients, maxFreeSockets: clients });
  const start = performance.now();
  const measureFrom = start + warmupSeconds * 1000;
  const measureTo = measureFrom + seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const noteError = (what: string): void => {
    errors++;
    firstError ??= what;
  };

  const client = async (c: number): Promise<void> => {
    // Spread the clients over the key space so that they do not write the same keys in step.
    let i = (c * 7919) % target.variants;
    while (performance.now() < measureTo) {
      const t0 = performance.now();
      try {
        const answer = await send(agent, target.host, target.port, target.method, target.path(i), target.body(i), timeoutMs);
        const t1 = performance.now();
        if (answer.status >= 200 && answer.status < 300) {
          if (t0 >= measureFrom && t1 <= measureTo) latencies.push(t1 - t0);
        } else {
          noteError(`HTTP ${answer.status} ${answer.body.slice(0, 200)}`);
          await sleep(10);
        }
      } catch (err) {
        noteError(err instanceof Error ? err.message : String(err));
        await sleep(10);
      }
      i = (i + 1) % target.variants;
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  agent.destroy();
  const ops = latencies.length;
  const p50Ms = quantileInPlace(latencies, 0.5);
  const p99Ms = quantileInPlace(latencies, 0.99);
  return { clients, seconds, ops, opsPerSec: ops / seconds, p50Ms, p99Ms, errors, firstError };
}
