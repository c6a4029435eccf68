import { describe, expect, it } from "vitest";
import { MemoryStorage } from "../src/storage/memory-storage.js";
import { storageConformance } from "../src/testing/storage-conformance.js";

storageConformance({ name: "MemoryStorage", factory: async () => ({ storage: new MemoryStorage() }), describe, it, expect });
