// The package as users get it: `npm pack`, install the tarball into a fresh project, and
// use it from JavaScript, from TypeScript (NodeNext, strict, types from the package) and
// through its bin. Needs the registry (or a warm npm cache) for the dependencies.
// CI_SKIP_PACK=1 skips it.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const exec = promisify(execFile);
const root = resolve(import.meta.dirname, "..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const skip = process.env.CI_SKIP_PACK === "1";
if (skip) console.log("package.test.ts: skipped because CI_SKIP_PACK=1 (no npm pack / install of the tarball)");

interface PackResult {
  readonly filename: string;
  readonly files: readonly { readonly path: string }[];
}

async function pack(args: string[]): Promise<PackResult> {
  const { stdout } = await exec(npm, ["pack", "--json", "--ignore-scripts", ...args], { cwd: root, maxBuffer: 16 * 1024 * 1024 });
  return (JSON.parse(stdout) as PackResult[])[0]!;
}

/** The newest modification time under `dir` (recursively), in ms. */
async function newest(dir: string): Promise<number> {
  let max = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) max = Math.max(max, (await stat(join(entry.parentPath, entry.name))).mtimeMs);
  }
  return max;
}

/** Builds unless dist is newer than every source (`npm test` has just built it). */
async function ensureBuilt(): Promise<void> {
  const built = await stat(join(root, "dist/index.js")).then((s) => s.mtimeMs, () => 0);
  const sources = Math.max(await newest(join(root, "src")), await newest(join(root, "examples")));
  if (built < sources) await exec(npm, ["run", "-s", "build"], { cwd: root });
}

describe.skipIf(skip)("the npm package", () => {
  let work = "";
  let consumer = "";

  beforeAll(async () => {
    await ensureBuilt();
    work = await mkdtemp(join(tmpdir(), "raftkit-pack-"));
    consumer = join(work, "consumer");
    const tarball = join(work, (await pack(["--pack-destination", work])).filename);
    await exec("mkdir", [consumer]);
    await writeFile(join(consumer, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }));
    await exec(npm, ["install", tarball, "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd: consumer });
  }, 180_000);

  afterAll(async () => {
    if (work !== "") await rm(work, { recursive: true, force: true });
  });

  it("contains the build, the bin and the docs, and nothing from the sources, tests or other examples", async () => {
    const { files } = await pack(["--dry-run"]);
    const paths = files.map((f) => f.path);
    for (const required of ["package.json", "README.md", "LICENSE", "CHANGELOG.md", "dist/index.js", "dist/index.d.ts", "dist/testing/index.js", "dist/testing/index.d.ts", "dist/examples/kv-server/main.js"]) {
      expect(paths).toContain(required);
    }
    const stray = paths.filter(
      (p) => /^(src|test|bench|scripts|examples|docs|etc|temp)\//.test(p) || (p.includes("examples/") && !p.startsWith("dist/examples/kv-server/")),
    );
    expect(stray).toEqual([]);
  });

  it("works from plain JavaScript: a one-node cluster proposes, and raftkit/testing runs a simulation", async () => {
    await writeFile(
      join(consumer, "smoke.mjs"),
      `import { KvStateMachine, MemoryNetwork, MemoryStorage, RaftNode } from "raftkit";
import { runSimulation } from "raftkit/testing";
const kv = new KvStateMachine();
const node = new RaftNode({ id: "n1", peers: ["n1"], stateMachine: kv, storage: new MemoryStorage(), transport: new MemoryNetwork().transport("n1"), tickMs: 5 });
await node.start();
const result = await node.propose({ op: "put", key: "k", value: "v" });
await node.read();
await node.stop();
const sim = await runSimulation({ seed: 1, faultPhaseMs: 300 });
console.log(JSON.stringify({ result, value: kv.get("k"), simulation: sim.ok }));
`,
    );
    const { stdout } = await exec(process.execPath, ["smoke.mjs"], { cwd: consumer, timeout: 30_000 });
    expect(JSON.parse(stdout)).toEqual({ result: { ok: true, previous: null }, value: "v", simulation: true });
  }, 60_000);

  it("type-checks from TypeScript with NodeNext resolution and the package's own declarations", async () => {
    await writeFile(
      join(consumer, "smoke.ts"),
      `import { KvStateMachine, MemoryNetwork, MemoryStorage, RaftNode, isRaftError, type KvResult, type RaftRole } from "raftkit";
import { runSimulation, type SimulationResult } from "raftkit/testing";
const node = new RaftNode({ id: "n1", peers: ["n1"], stateMachine: new KvStateMachine(), storage: new MemoryStorage(), transport: new MemoryNetwork().transport("n1") });
node.on("role", (role: RaftRole, term: number) => console.log(role, term));
export async function put(): Promise<KvResult> {
  try {
    return await node.propose({ op: "put", key: "k", value: "v" }, { timeoutMs: 1000 });
  } catch (err) {
    if (isRaftError(err, "NOT_LEADER")) console.log(err.leaderId);
    throw err;
  }
}
// @ts-expect-error not a KvCommand: proves the types come through (an "any" would accept it)
void node.propose({ op: "increment", key: "k" });
export const simulated: Promise<SimulationResult> = runSimulation({ seed: 1 });
`,
    );
    const tsc = join(root, "node_modules/.bin/tsc");
    const args = ["--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--strict", "--noEmit"];
    // Node's own types from this repository (the consumer installs nothing but raftkit);
    // raftkit's and eventemitter3's declarations are checked too (no skipLibCheck).
    args.push("--typeRoots", join(root, "node_modules/@types"), "--types", "node", "smoke.ts");
    const outcome = await exec(tsc, args, { cwd: consumer }).then(
      () => "ok",
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    expect(outcome).toBe("ok");
  }, 60_000);

  it("installs the raftkit-kv bin, which runs", async () => {
    const { stdout } = await exec(join(consumer, "node_modules/.bin/raftkit-kv"), ["--help"], { cwd: consumer, timeout: 30_000 });
    expect(stdout).toContain("raftkit-kv --node-id N --cluster");
  }, 60_000);
});
