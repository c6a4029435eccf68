import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LevelStorage } from "../src/storage/level-storage.js";
import { storageConformance } from "../src/testing/storage-conformance.js";

storageConformance({
  name: "LevelStorage",
  factory: async () => {
    const dir = await mkdtemp(join(tmpdir(), "raftkit-level-"));
    const open = () => new LevelStorage({ location: join(dir, "db"), nodeId: "n1" });
    return { storage: open(), reopen: async () => open(), cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
  describe,
  it,
  expect,
});
