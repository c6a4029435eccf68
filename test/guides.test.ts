// The guides' examples (examples/guides/*.ts, built to dist/examples/guides) run to
// completion, and every snippet of the guides is taken from a type-checked file, so that
// docs/*.md do not drift from the code. The adapters and testing examples are exercised
// by test/guide-adapters.test.ts and test/guide-testing.test.ts.
import { execFile } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);

/**
 * Where a ```ts snippet of a guide must come from: files that `tsc -p tsconfig.check.json`
 * type-checks. A snippet matches a file when its lines (trimmed, blank lines and `// ...`
 * elisions left out) occur in the file in the same order.
 */
async function snippetSources(): Promise<Map<string, string[]>> {
  const files = [...(await readdir("examples/guides")).map((f) => `examples/guides/${f}`), "test/guide-adapters.test.ts", "test/guide-testing.test.ts"];
  const sources = new Map<string, string[]>();
  for (const file of files) sources.set(file, (await readFile(file, "utf8")).split("\n").map((l) => l.trim()));
  return sources;
}

function occursInOrder(lines: readonly string[], source: readonly string[]): boolean {
  let at = 0;
  for (const line of lines) {
    while (at < source.length && source[at] !== line) at++;
    if (at === source.length) return false;
    at++;
  }
  return true;
}

describe("the guides' snippets", () => {
  it.each(["embedding", "adapters", "testing", "operations"])("every ts snippet of docs/%s.md is taken from a type-checked file", async (guide) => {
    const text = await readFile(`docs/${guide}.md`, "utf8");
    const sources = await snippetSources();
    const snippets = [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(snippets.length).toBeGreaterThan(0);
    const orphans = snippets.filter((snippet) => {
      const lines = snippet.split("\n").map((l) => l.trim()).filter((l) => l !== "" && l !== "// ...");
      return ![...sources.values()].some((source) => occursInOrder(lines, source));
    });
    expect(orphans).toEqual([]);
  });
});

async function example(name: string): Promise<string> {
  const { stdout } = await run(process.execPath, [`dist/examples/guides/${name}.js`], { timeout: 60_000 });
  return stdout;
}

describe("the guides' examples", () => {
  it("embedding: a ledger on three nodes, a follower read, a snapshot", async () => {
    const out = await example("embedding");
    expect(out).toContain("{ ok: false, reason: 'insufficient funds' }");
    expect(out).toMatch(/: alice 75, bob 25/);
    expect(out).toMatch(/snapshot at \d+/);
  });

  it("operations: add a member, transfer leadership, remove a member, snapshot", async () => {
    const out = await example("operations");
    expect(out).toContain("d added; voters now a,b,c,d");
    expect(out).toMatch(/leadership moved from \w to d/);
    expect(out).toMatch(/d: leader term \d+ leader d .*voters b,c,d/);
  });
});
