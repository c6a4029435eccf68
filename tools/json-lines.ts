// A raftkit node in a child process, spoken to in JSON lines: requests on its stdin,
// answers and events on its stdout, one JSON object a line. Both ends are here:
// JsonLinesChild for the harness (test/fixtures/crash-harness.ts, scripts/soak/compaction-cluster.ts),
// and childConfig, sendLine and serveJsonLines for the child (test/fixtures/crash-node.ts,
// scripts/soak/compaction-node.ts).
//
// The child is a TypeScript script run under tsx with its config as JSON in argv[2]. It
// reports {"ready": true} once its node has started, or {"fatal": "..."} and exits 1.
// Closing its stdin stops the node and ends the process, so a harness that dies takes its
// children with it.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { track } from "./processes.js";

export type JsonLine = Record<string, unknown>;

/** What every raftkit node in a child process gets in its config. */
export interface ChildNodeConfig {
  readonly id: string;
  /** The node's LevelStorage directory. */
  readonly location: string;
  /** Every member's id and "host:port", this node's included. */
  readonly peers: Readonly<Record<string, string>>;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly snapshotThreshold: number;
  readonly trailingEntries: number;
}

// ---------------------------------------------------------------- the harness's end

/** How many lines of a child's stderr a harness keeps, for its failure report. */
const TAIL_LINES = 40;

/** Options of {@link JsonLinesChild}. */
export interface JsonLinesChildOptions {
  /** The TypeScript script the child runs, under tsx. */
  readonly script: string;
  /** Passed to the child as JSON in argv[2]. */
  readonly config: unknown;
  /** Node flags before the script, such as "--expose-gc". @defaultValue none */
  readonly nodeFlags?: readonly string[];
  readonly cwd: string;
  /** Names the child's lines in `tail`. */
  readonly name: string;
  /**
   * Where the last lines of the child's stderr go, as "name: line", and any stdout line that
   * is not JSON. Owned by the caller, so that it outlives one process (restarts).
   */
  readonly tail: string[];
  /** Each JSON line the child writes on stdout. */
  readonly onLine: (line: JsonLine) => void;
  /** Called once the child has exited, before `exited` resolves. */
  readonly onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
  /** Registers the child with track() (tools/processes.ts), so that installCleanup kills it. @defaultValue false */
  readonly track?: boolean;
}

/** One child process, from its start to its exit (a restart is a new one). */
export class JsonLinesChild {
  readonly process: ChildProcess;
  /** Resolves once the child has exited (after `onExit`). */
  readonly exited: Promise<void>;

  constructor(private readonly options: JsonLinesChildOptions) {
    const proc = spawn(process.execPath, [...(options.nodeFlags ?? []), "--import", "tsx", options.script, JSON.stringify(options.config)], {
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
    if (options.track === true) track(proc);
    this.process = proc;
    // Writes to a process that was just killed fail with EPIPE: its exit is what is reported.
    proc.stdin!.on("error", () => {});
    this.exited = new Promise((resolve) =>
      proc.once("exit", (code, signal) => {
        options.onExit?.(code, signal);
        resolve();
      }),
    );
    createInterface({ input: proc.stdout! }).on("line", (text) => {
      let line: JsonLine;
      try {
        line = JSON.parse(text) as JsonLine;
      } catch {
        this.tail(`stdout (not JSON): ${text}`);
        return;
      }
      options.onLine(line);
    });
    createInterface({ input: proc.stderr! }).on("line", (text) => this.tail(text));
  }

  private tail(text: string): void {
    const tail = this.options.tail;
    tail.push(`${this.options.name}: ${text}`);
    if (tail.length > TAIL_LINES) tail.shift();
  }

  /** One request line on the child's stdin. */
  send(request: JsonLine): void {
    this.process.stdin?.write(JSON.stringify(request) + "\n");
  }

  /** SIGKILL: no chance to flush or close anything. Resolves once the process is gone. */
  async kill(): Promise<void> {
    this.process.kill("SIGKILL");
    await this.exited;
  }

  /** A graceful stop (stdin closed: the node stops, then the process exits), SIGKILL after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.process.stdin?.end();
    const timer = setTimeout(() => this.process.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- the child's end

/** The child's config: the JSON in argv[2]. */
export function childConfig<Config extends ChildNodeConfig>(): Config {
  return JSON.parse(process.argv[2] ?? "") as Config;
}

/** One line to the harness. */
export function sendLine(line: JsonLine): void {
  process.stdout.write(JSON.stringify(line) + "\n");
}

/** What {@link serveJsonLines} needs of the node. */
export interface ChildNode {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The child's end of the channel, from {@link serveJsonLines}. */
export interface ChildChannel {
  /** Whether the node is stopping (stdin closed, or `stop()` called). */
  readonly stopping: boolean;
  /** Stops the node, bounded to 5 s, then exits the process. Once: later calls do nothing. */
  stop(): Promise<void>;
  /** Starts the node and reports {"ready": true} (after `onStarted`); on failure reports {"fatal"} and exits 1. */
  start(onStarted?: () => void): Promise<void>;
}

/** Passes each request line on stdin to `onRequest`; stdin closing stops the node and ends the process. */
export function serveJsonLines<Request>(id: string, node: ChildNode, onRequest: (request: Request) => void): ChildChannel {
  let stopping = false;
  const channel: ChildChannel = {
    get stopping() {
      return stopping;
    },
    async stop() {
      if (stopping) return;
      stopping = true;
      // Bounded: a harness waiting for this process must not wait forever.
      setTimeout(() => process.exit(process.exitCode ?? 0), 5_000).unref();
      await node.stop().catch(() => {});
      process.exit();
    },
    async start(onStarted) {
      try {
        await node.start();
        onStarted?.();
        sendLine({ ready: true });
      } catch (err) {
        sendLine({ fatal: `${id}: start failed: ${err instanceof Error ? err.message : String(err)}` });
        process.exit(1);
      }
    },
  };
  const lines = createInterface({ input: process.stdin });
  lines.on("close", () => void channel.stop());
  lines.on("line", (line) => onRequest(JSON.parse(line) as Request));
  return channel;
}
