// npm run demo: a local 3-node raftkit-kv cluster as three child processes (data and logs
// under ./data), then the interactive client in the foreground. Leaving the client (quit,
// Ctrl-D, Ctrl-C) stops every node with SIGTERM and waits for it to exit.
//
//   npm run demo                        demo-mode timing: elections take seconds, to watch
//   npm run demo -- --fast-mode         the production-like timing
//   npm run demo -- --base-port 7000    Raft on 7000-7002, HTTP on 8000-8002
//   npm run demo -- --fresh             start from empty data directories
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

const MAIN = path.resolve("dist/examples/kv-server/main.js");
const HOST = "127.0.0.1";
const NODES = 3;

const { values } = parseArgs({
  options: {
    "base-port": { type: "string", default: "8080" },
    fresh: { type: "boolean", default: false },
    "fast-mode": { type: "boolean", default: false },
    "debug-mode": { type: "boolean", default: false },
    "demo-mode": { type: "boolean", default: false },
  },
  strict: true,
});
const basePort = Number(values["base-port"]);
if (!Number.isInteger(basePort) || basePort < 1 || basePort + NODES - 1 + 1000 > 65535) {
  console.error(`demo: --base-port must leave room for ${NODES} Raft ports and their HTTP ports (+1000)`);
  process.exit(2);
}
const mode = values["fast-mode"] ? "--fast-mode" : values["debug-mode"] ? "--debug-mode" : "--demo-mode";

const ids = Array.from({ length: NODES }, (_, i) => String(i + 1));
const raftAddress = (id: string): string => `${HOST}:${basePort + Number(id) - 1}`;
const httpUrl = (id: string): string => `http://${HOST}:${basePort + Number(id) - 1 + 1000}`;
const cluster = ids.map(raftAddress).join(",");
const dataRoot = path.resolve("data");

interface Node {
  readonly id: string;
  readonly child: ChildProcess;
  readonly log: string;
  exited: boolean;
  readonly exit: Promise<void>;
}

function startNode(id: string): Node {
  const dir = path.join(dataRoot, `node${id}`);
  const log = path.join(dataRoot, `node${id}.log`);
  mkdirSync(dir, { recursive: true });
  // The nodes log to files: their output would garble the client's prompt.
  const fd = openSync(log, "a");
  const child = spawn(process.execPath, [MAIN, "--node-id", id, "--cluster", cluster, "--data-dir", dir, mode, "--verbose"], {
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  const node: Node = {
    id,
    child,
    log,
    exited: false,
    exit: new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        node.exited = true;
        if (!stopping) process.stderr.write(`\n[demo] node ${id} exited (${signal ?? `code ${code}`}); its log: ${log}\n`);
        resolve();
      }),
    ),
  };
  return node;
}

async function leader(): Promise<string | null> {
  const statuses = await Promise.all(
    ids.map(async (id) => {
      try {
        const res = await fetch(`${httpUrl(id)}/v1/status`, { signal: AbortSignal.timeout(1000) });
        return (await res.json()) as { role: string; id: string; leader: string | null };
      } catch {
        return null;
      }
    }),
  );
  const l = statuses.find((s) => s?.role === "leader")?.id;
  return l !== undefined && statuses.every((s) => s?.leader === l) ? l : null;
}

let stopping = false;
let nodes: Node[] = [];
let client: ChildProcess | null = null;

async function stopAll(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    client?.kill("SIGTERM");
    process.stderr.write("[demo] stopping the nodes...\n");
    for (const n of nodes) if (!n.exited) n.child.kill("SIGTERM");
    const forced = setTimeout(() => {
      for (const n of nodes) if (!n.exited) n.child.kill("SIGKILL");
    }, 10_000);
    await Promise.all(nodes.map((n) => n.exit));
    clearTimeout(forced);
    process.stderr.write("[demo] every node stopped\n");
  }
  process.exit(code);
}

// Ctrl-C before the client owns the terminal (or a kill of the demo itself) still stops the nodes.
process.on("SIGINT", () => void stopAll(130));
process.on("SIGTERM", () => void stopAll(143));

if (values.fresh) rmSync(dataRoot, { recursive: true, force: true });
nodes = ids.map(startNode);
process.stderr.write(`[demo] starting ${NODES} nodes (${mode.slice(2)}), waiting for a leader...\n`);
const deadline = Date.now() + 30_000;
let found: string | null = null;
while (found === null) {
  const dead = nodes.find((n) => n.exited);
  if (dead !== undefined) {
    process.stderr.write(`[demo] node ${dead.id} did not start:\n${readFileSync(dead.log, "utf8").split("\n").slice(-10).join("\n")}\n`);
    await stopAll(1);
  }
  if (Date.now() > deadline) {
    process.stderr.write("[demo] no leader after 30 s; see the logs in ./data\n");
    await stopAll(1);
  }
  await new Promise((r) => setTimeout(r, 200));
  found = await leader();
}

process.stdout.write(`\nraftkit-kv demo: ${NODES} nodes, node ${found} leads\n\n`);
for (const n of nodes) {
  process.stdout.write(`  node ${n.id}  pid ${n.child.pid}  raft ${raftAddress(n.id)}  http ${httpUrl(n.id)}  log ${path.relative(".", n.log)}\n`);
}
process.stdout.write(`
Try, from another terminal:
  curl -X PUT ${httpUrl("1")}/v1/kv/hello -d '{"value":"world"}'
  curl ${httpUrl("2")}/v1/kv/hello
  curl ${httpUrl("1")}/v1/status
  kill -9 <the leader's pid>      and watch the client find the new leader

Add a fourth node (stop it with Ctrl-C; the demo does not manage it), then remove it:
  node ${path.relative(".", MAIN)} --node-id 4 --bind ${HOST}:${basePort + 3} --join ${HOST}:${basePort + 1000} --data-dir data/node4 ${mode}
  curl -L -X DELETE ${httpUrl("1")}/v1/members/4   (or, in the client: remove-member 4)

`);

client = spawn(process.execPath, [MAIN, "--cluster", cluster, mode], { stdio: "inherit" });
client.once("exit", (code) => void stopAll(code ?? 0));
