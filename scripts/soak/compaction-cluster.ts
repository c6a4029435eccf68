/**
 * The processes of the compaction soak: three children running scripts/soak/compaction-node.ts
 * (LevelStorage + TcpTransport on loopback), spoken to over JSON lines on stdin/stdout.
 *
 * Every child and the temp directory go away however the soak ends: a normal return, a
 * thrown error, Ctrl-C, SIGTERM, or its time bound (tools/processes.ts kills what is
 * still running and removes the directory on `exit`). A child also stops by itself when
 * its stdin closes, so even a SIGKILL of the soak leaves nothing running for long.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JsonLinesChild } from "../../tools/json-lines.js";
import { withTimeout } from "../../tools/processes.js";
import type { CompactionNodeConfig, LoadSpec, NodeSample } from "./compaction-node.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHILD = fileURLToPath(new URL("./compaction-node.ts", import.meta.url));

type Line = Record<string, unknown>;

/** One node's child process. */
export class NodeProcess {
  private child: JsonLinesChild | undefined;
  private token = 0;
  private readonly waiters = new Map<number, (line: Line) => void>();
  private readyWaiter: { resolve: () => void; reject: (err: Error) => void } | undefined;
  /** The last lines of stderr, for a failure report. */
  readonly stderrTail: string[] = [];

  constructor(
    readonly config: CompactionNodeConfig,
    /** Every line that is not the answer to a request: milestone, loadDone, fatal. */
    private readonly onLine: (node: NodeProcess, line: Line) => void,
  ) {}

  get id(): string {
    return this.config.id;
  }

  get pid(): number | undefined {
    return this.child?.process.pid;
  }

  /** Starts the process; resolves once its node has started, rejects if it exits first or takes longer than `timeoutMs`. */
  start(timeoutMs: number): Promise<void> {
    const ready = new Promise<void>((resolve, reject) => (this.readyWaiter = { resolve, reject }));
    ready.catch(() => {}); // a rejection after the timeout below is not an unhandled one
    this.child = new JsonLinesChild({
      script: CHILD,
      config: this.config,
      nodeFlags: ["--expose-gc"],
      cwd: ROOT,
      name: this.id,
      tail: this.stderrTail,
      track: true,
      onExit: (code, signal) => {
        this.readyWaiter?.reject(new Error(`${this.id} exited (${signal ?? `code ${code}`}) before it was ready`));
        this.readyWaiter = undefined;
        this.onLine(this, { exited: signal ?? code });
      },
      onLine: (line) => {
        if (line.ready === true) {
          this.readyWaiter?.resolve();
          this.readyWaiter = undefined;
          return;
        }
        const token = typeof line.sample === "number" ? line.sample : typeof line.digest === "number" ? line.digest : undefined;
        const waiter = token === undefined ? undefined : this.waiters.get(token);
        if (waiter !== undefined) {
          this.waiters.delete(token!);
          waiter(line);
        } else if (token === undefined) {
          this.onLine(this, line);
        }
      },
    });
    return withTimeout(ready, timeoutMs, `${this.id} did not start`);
  }

  private send(request: Line): void {
    this.child?.send(request);
  }

  private request(key: "sample" | "digest", extra: Line, timeoutMs: number): Promise<Line> {
    const token = ++this.token;
    const answer = new Promise<Line>((resolve) => this.waiters.set(token, resolve));
    this.send({ [key]: token, ...extra });
    return withTimeout(answer, timeoutMs, `${this.id} did not answer a ${key} request`).finally(() => this.waiters.delete(token));
  }

  /** The node's figures now; with `gc`, after a full garbage collection in the child. */
  async sample(timeoutMs: number, gc = false): Promise<NodeSample> {
    return (await this.request("sample", { gc }, timeoutMs)) as unknown as NodeSample;
  }

  /** A SHA-256 of the node's whole KV state, with its key count and applied index. */
  async digest(timeoutMs: number): Promise<{ sha256: string; keys: number; appliedIndex: number }> {
    return (await this.request("digest", {}, timeoutMs)) as unknown as { sha256: string; keys: number; appliedIndex: number };
  }

  load(spec: LoadSpec): void {
    this.send({ load: spec });
  }

  /** A graceful stop (stdin closed: the node stops, then the process exits), SIGKILL after a bound. */
  async stop(graceMs = 8_000): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    await child.stop(graceMs);
    this.child = undefined;
  }
}

/** Total bytes of the files in a node's storage directory (LevelDB's and the snapshot file), and how many snapshot files. */
export async function directorySize(dir: string): Promise<{ bytes: number; snapFiles: number }> {
  let bytes = 0;
  let snapFiles = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const s = await stat(join(dir, name)).catch(() => undefined);
    if (s?.isFile() === true) bytes += s.size;
    if (name.endsWith(".snap")) snapFiles++;
  }
  return { bytes, snapFiles };
}
