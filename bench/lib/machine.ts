// Facts about the machine, and the floors a benchmark compares with:
// one fdatasync of a small appended record, one loopback HTTP round trip.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, fdatasyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { availableParallelism, loadavg, release } from "node:os";
import { join } from "node:path";
import { track } from "../../tools/processes.js";
import { fmt, median } from "./stats.js";

export function machineFacts(extra: Record<string, string> = {}): string {
  let cpu = "unknown";
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
  } catch {
    // not Linux
  }
  const nproc = spawnSync("nproc", { encoding: "utf8" }).stdout?.trim() || String(availableParallelism());
  const facts: Record<string, string> = {
    nproc,
    cpu,
    kernel: release(),
    node: process.version,
    ...extra,
    "load average (1/5/15 min)": loadavg().map((l) => l.toFixed(2)).join(" / "),
  };
  return Object.entries(facts)
    .map(([k, v]) => `  ${k}: ${v}`)
    .join("\n");
}

export interface FsyncFloor {
  /** Median of write(100 bytes appended) + fdatasync: the file grows, as LevelDB's log does. */
  readonly appendMs: number;
  /**
   * Median of write(100 bytes) + fdatasync inside a preallocated, already synced file (as
   * etcd's WAL does with its 64 MB segments): the file's size does not change, so
   * fdatasync need not write metadata.
   */
  readonly preallocatedMs: number;
  readonly samples: number;
}

/** Both kinds of fdatasync on files in `dir`, alternated, over about `ms`. */
export function fdatasyncFloor(dir: string, ms = 1000): FsyncFloor {
  const appendFd = openSync(join(dir, "fdatasync-append.probe"), "a");
  const preFd = openSync(join(dir, "fdatasync-prealloc.probe"), "w+");
  const size = 4 << 20;
  const record = new Uint8Array(100).fill(0x41);
  const append: number[] = [];
  const pre: number[] = [];
  try {
    writeSync(preFd, new Uint8Array(size));
    fdatasyncSync(preFd);
    let pos = 0;
    const start = performance.now();
    while (performance.now() - start < ms || append.length < 20) {
      let t = performance.now();
      writeSync(appendFd, record);
      fdatasyncSync(appendFd);
      append.push(performance.now() - t);
      t = performance.now();
      writeSync(preFd, record, 0, record.length, pos);
      fdatasyncSync(preFd);
      pre.push(performance.now() - t);
      pos = (pos + record.length) % (size - record.length);
    }
  } finally {
    closeSync(appendFd);
    closeSync(preFd);
  }
  return { appendMs: median(append), preallocatedMs: median(pre), samples: append.length };
}

// A trivial HTTP server in its own process (so that it does not share the load generator's
// thread): reads the body, answers 200 with a small JSON body, like the systems under test.
const TRIVIAL_SERVER = `
const http = require("node:http");
const server = http.createServer({ keepAlive: true }, (req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json", "content-length": 12 });
    res.end('{"index":1}\\n');
  });
});
server.keepAliveTimeout = 65000;
server.listen(0, "127.0.0.1", () => process.stdout.write(server.address().port + "\\n"));
`;

/** Starts the trivial server; resolves with its port and the process (registered for cleanup). */
export function startTrivialServer(): Promise<{ port: number; child: ChildProcess }> {
  const child = track(spawn(process.execPath, ["-e", TRIVIAL_SERVER], { stdio: ["ignore", "pipe", "inherit"] }));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("the trivial HTTP server did not start")), 5000);
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line !== undefined) {
        clearTimeout(timer);
        resolve({ port: Number(line), child });
      }
    });
    child.once("exit", (code) => reject(new Error(`the trivial HTTP server exited (${code})`)));
  });
}

export const describeFloor = (fsyncMs: number, rttMs: number): string =>
  `floor for one client = one fdatasync (${fmt(fsyncMs, 3)} ms) + one loopback HTTP round trip (${fmt(rttMs, 3)} ms) = ${fmt(fsyncMs + rttMs, 3)} ms`;
