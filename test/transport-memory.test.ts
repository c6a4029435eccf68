import { describe, expect, it } from "vitest";
import { transportConformance } from "../src/testing/transport-conformance.js";
import { MemoryNetwork } from "../src/transport/memory-transport.js";

transportConformance({
  name: "MemoryNetwork",
  describe,
  it,
  expect,
  factory: async (ids) => {
    const network = new MemoryNetwork();
    return {
      transports: new Map(ids.map((id) => [id, network.transport(id)])),
      restart: async (id) => network.transport(id),
    };
  },
});
