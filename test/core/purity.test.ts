// Style habit 1: the protocol core has no ambient nondeterminism and no I/O, so that it
// runs the same in the simulator, in production, and one day in a browser.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const dir = join(import.meta.dirname, "..", "..", "src", "core");
const files = readdirSync(dir).filter((f) => f.endsWith(".ts"));

/** The source without comments, so that prose may mention what code must not use. */
function code(file: string): string {
  return readFileSync(join(dir, file), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/\/\/.*$/gm, "");
}

const FORBIDDEN: [RegExp, string][] = [
  [/\bDate\b/, "Date (time comes from tick())"],
  [/\bperformance\b/, "performance (time comes from tick())"],
  [/\bset(Timeout|Interval|Immediate)\b/, "timers"],
  [/\bqueueMicrotask\b/, "microtasks"],
  [/\bMath\.random\b/, "Math.random (randomness is injected)"],
  [/\bPromise\b|\basync\b|\bawait\b/, "promises"],
  [/\bprocess\./, "process"],
  [/\bBuffer\b/, "Buffer (Uint8Array only)"],
  [/from "node:/, "node: modules"],
];

/**
 * The one exception: `SnapshotData`, the handle on stored snapshot bytes that the core
 * passes from storage to the driver. Its declaration names a promise; the core never
 * calls it (checked below).
 */
function withoutSnapshotHandle(source: string): string {
  return source.replace(/export interface SnapshotData \{[\s\S]*?\n\}/, "");
}

describe("src/core is pure", () => {
  it.each(files)("%s uses no clock, timer, randomness, promise or Node API", (file) => {
    const source = withoutSnapshotHandle(code(file));
    const found = FORBIDDEN.filter(([re]) => re.test(source)).map(([, what]) => what);
    expect(found).toEqual([]);
  });

  it.each(files)("%s never reads snapshot bytes (the driver does)", (file) => {
    expect(code(file)).not.toMatch(/\.read\(/);
  });

  it.each(files)("%s imports only from src/core", (file) => {
    const imports = [...code(file).matchAll(/from "([^"]+)"/g)].map((m) => m[1]!);
    expect(imports.filter((i) => !i.startsWith("./"))).toEqual([]);
  });

  it("quorum.ts imports nothing", () => {
    expect([...code("quorum.ts").matchAll(/from "([^"]+)"/g)]).toEqual([]);
  });
});
