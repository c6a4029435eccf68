// The adapters of docs/adapters.md (examples/guides/adapters.ts) through the exported
// conformance suites, exactly as the guide tells adapter authors to run them.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { storageConformance, transportConformance } from "raftkit/testing";
import { HttpTransport, JsonFileStorage } from "../examples/guides/adapters.js";
import { freePort } from "../tools/ports.js";

storageConformance({
  name: "JsonFileStorage (guide example)",
  factory: async () => {
    const dir = await mkdtemp(join(tmpdir(), "raftkit-guide-"));
    return {
      storage: new JsonFileStorage(dir),
      reopen: async () => new JsonFileStorage(dir), // a restarted process: a new instance, same directory
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  describe,
  it,
  expect,
});

transportConformance({
  name: "HttpTransport (guide example)",
  factory: async (ids) => {
    const ports = new Map<string, number>();
    for (const id of ids) ports.set(id, await freePort());
    const urls = new Map([...ports].map(([id, port]) => [id, `http://127.0.0.1:${port}`]));
    const make = (id: string) => new HttpTransport({ id, host: "127.0.0.1", port: ports.get(id)!, peers: urls });
    return { transports: new Map(ids.map((id) => [id, make(id)])), restart: async (id) => make(id) };
  },
  describe,
  it,
  expect,
});
