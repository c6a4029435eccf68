// An HTTP client for a raftkit-kv cluster: it keeps talking to the node that answered
// last, follows 307 redirects to the leader, and moves on to the next node when one is
// down or has no leader, until the retry window closes.
import { Agent, request } from "node:http";

export interface ApiResponse {
  readonly status: number;
  /** The parsed JSON body (a string for a body that is not JSON). */
  readonly body: unknown;
  /** Which node answered (its base URL). */
  readonly from: string;
}

/**
 * Whether repeating a request is harmless. `idempotent` requests (reads, put, delete) are
 * retried after any network failure; `once` requests (cas) only when they surely never
 * reached a server, or when the server said it did not propose them.
 */
export type RetryPolicy = "idempotent" | "once";

/** A failure with no HTTP answer to show: every node unreachable, or a request cut off. */
export class ClusterUnavailableError extends Error {
  override readonly name = "ClusterUnavailableError";
}

const MAX_REDIRECTS = 5;
/** 503 codes after which the same request may be sent again: nothing was proposed. */
const NOT_PROPOSED = new Set(["NO_LEADER", "DROPPED", "BUSY"]);

export class ClusterClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 4 });
  /** The node to try first: the last one that answered. */
  private preferred: string;

  /**
   * @param endpoints base URLs of every node's HTTP API
   * @param retryMs how long to keep looking for a node that can serve a request
   * @param requestTimeoutMs how long one HTTP exchange may take
   */
  constructor(
    readonly endpoints: readonly string[],
    private readonly retryMs: number,
    private readonly requestTimeoutMs: number,
  ) {
    if (endpoints.length === 0) throw new RangeError("ClusterClient needs at least one endpoint");
    this.preferred = endpoints[0]!;
  }

  /**
   * Sends `method path` to the cluster and returns the first answer that is not a redirect
   * or a retryable 503. `timeoutMs` overrides the client's per-exchange timeout (for slow
   * requests such as membership changes).
   */
  async send(method: string, path: string, body: unknown, policy: RetryPolicy, timeoutMs = this.requestTimeoutMs): Promise<ApiResponse> {
    const deadline = Date.now() + this.retryMs;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let target = this.preferred;
    let redirects = 0;
    let lastProblem = "";
    for (let attempt = 0; ; attempt++) {
      let res: RawResponse;
      try {
        res = await this.exchange(target, method, path, payload, timeoutMs);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "";
        lastProblem = `${target}: ${(err as Error).message}`;
        // Refused: the request never left. Anything else: it may have been applied.
        if (policy === "once" && code !== "ECONNREFUSED") throw new ClusterUnavailableError(`${lastProblem}; the outcome is unknown`);
        if (Date.now() >= deadline) throw new ClusterUnavailableError(`no node answered: ${lastProblem}`);
        target = this.next(target);
        if (target === this.preferred) await sleep(200);
        continue;
      }
      if (res.status === 307 && res.location !== undefined && redirects < MAX_REDIRECTS) {
        redirects++;
        target = new URL(res.location).origin;
        continue;
      }
      const code = codeOf(res.body);
      if (res.status === 503 && (policy === "idempotent" || NOT_PROPOSED.has(code)) && Date.now() < deadline) {
        // An election is probably under way; ask around until someone knows the leader.
        redirects = 0;
        target = this.next(target);
        await sleep(attempt < 3 ? 100 : 300);
        continue;
      }
      this.preferred = target;
      return { status: res.status, body: res.body, from: target };
    }
  }

  /** One request to one node, no retries: for `status` of every node. */
  async sendTo(base: string, method: string, path: string, timeoutMs: number): Promise<ApiResponse> {
    const res = await this.exchange(base, method, path, undefined, timeoutMs);
    return { status: res.status, body: res.body, from: base };
  }

  close(): void {
    this.agent.destroy();
  }

  private next(target: string): string {
    const i = this.endpoints.indexOf(target);
    // A redirect may point outside the list (a node known by another address): start over.
    return this.endpoints[(i + 1) % this.endpoints.length]!;
  }

  private exchange(base: string, method: string, path: string, payload: string | undefined, timeoutMs: number): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { accept: "application/json" };
      if (payload !== undefined) {
        headers["content-type"] = "application/json";
        headers["content-length"] = Buffer.byteLength(payload);
      }
      const req = request(base + path, { method, headers, agent: this.agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON (e.g. /metrics): keep the text
          }
          const location = res.headers.location;
          resolve({ status: res.statusCode ?? 0, body, ...(location === undefined ? {} : { location }) });
        });
      });
      req.on("timeout", () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: "ETIMEDOUT" })));
      req.on("error", reject);
      req.end(payload);
    });
  }
}

interface RawResponse {
  readonly status: number;
  readonly body: unknown;
  readonly location?: string;
}

function codeOf(body: unknown): string {
  return typeof body === "object" && body !== null && typeof (body as { code?: unknown }).code === "string" ? (body as { code: string }).code : "";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
