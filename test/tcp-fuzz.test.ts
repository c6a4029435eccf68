import { describe, expect, it } from "vitest";
import { fuzzCases, fuzzSeed, runTransportFuzz } from "../scripts/soak-fuzz.js";

// The harness lives in scripts/soak-fuzz.ts so that the soak (`npm run soak:fuzz`) runs
// exactly these checks at a larger count.
const seed = fuzzSeed();
const cases = fuzzCases(1000);
const HEAP_BOUND_BYTES = 32 * 1024 * 1024;

describe("TcpTransport fuzz", () => {
  it(`survives ${cases} seeded cases (seed ${seed})`, async () => {
    console.log(`tcp-fuzz: seed ${seed}, ${cases} cases (replay: FUZZ_SEED=${seed} npx vitest run test/tcp-fuzz.test.ts)`);
    const report = await runTransportFuzz({ seed, cases });
    console.log(`tcp-fuzz: ${JSON.stringify(report)}`);
    expect(report.decoderCases + report.socketCases).toBe(cases);
    expect(report.accepted).toBeGreaterThan(0);
    expect(report.rejected).toBeGreaterThan(0);
    expect(report.connectionsClosed).toBeGreaterThan(0);
    expect(report.messagesDelivered).toBeGreaterThan(0);
    expect(report.heapDeltaBytes).toBeLessThan(HEAP_BOUND_BYTES);
  });
});
