import { describe, expect, it } from "vitest";
import {
  HistoryRecorder,
  checkLinearizable,
  kvModel,
  registerModel,
  type History,
  type KvModelInput,
  type KvModelOutput,
  type Operation,
  type RegisterInput,
} from "../src/testing/linearizability.js";
import { KvStateMachine } from "../src/kv/kv-state-machine.js";
import type { KvCommand } from "../src/kv/commands.js";
import { Prng } from "../src/testing/prng.js";

type RegOp = Operation<RegisterInput<number>, number | null>;
const register = registerModel<number>();

function write(value: number, call: number, ret: number | undefined, clientId = "w"): RegOp {
  return { clientId, input: { op: "write", value }, output: null, call, return: ret };
}
function read(output: number | null, call: number, ret: number | undefined, clientId = "r"): RegOp {
  return { clientId, input: { op: "read" }, output, call, return: ret };
}
function check(history: History<RegisterInput<number>, number | null>) {
  return checkLinearizable(history, register);
}

/** Uniform draws in [0, 1) from the simulator's seeded generator. */
function seeded(seed: number): () => number {
  const rng = new Prng(seed);
  return () => rng.next();
}

describe("checkLinearizable: register histories", () => {
  it("accepts the empty history and a sequential one", () => {
    expect(check([]).outcome).toBe("valid");
    expect(check([write(1, 0, 1), read(1, 2, 3), write(2, 4, 5), read(2, 6, 7)]).outcome).toBe("valid");
    expect(check([read(null, 0, 1)]).outcome).toBe("valid");
  });

  it("uses the configured initial value", () => {
    expect(checkLinearizable([read(7, 0, 1)], registerModel<number>({ initial: 7 })).outcome).toBe("valid");
    expect(checkLinearizable([read(null, 0, 1)], registerModel<number>({ initial: 7 })).outcome).toBe("invalid");
  });

  it("rejects a stale read after a write completed, and explains where", () => {
    const w = write(1, 0, 10);
    const r = read(null, 20, 30);
    const result = check([w, r]);
    expect(result.outcome).toBe("invalid");
    if (result.outcome !== "invalid") return;
    expect(result.key).toBeUndefined();
    expect(result.blocked).toBe(r);
    expect(result.linearized).toEqual([w]);
    expect(result.unplaced).toEqual([r]);
    expect(result.state).toBe("1");
    expect(result.message).toContain("no order places read() -> null [client r, 20..30]");
    expect(result.message).toContain("write(1)");
  });

  it("rejects a lost write: acknowledged, then never visible", () => {
    expect(check([write(1, 0, 10), read(null, 20, 30)]).outcome).toBe("invalid");
    // A later write completed and a read still sees the older one.
    expect(check([write(1, 0, 10), write(2, 20, 30), read(1, 40, 50)]).outcome).toBe("invalid");
    // The write is lost between two reads that saw it and did not.
    expect(check([write(1, 0, 10), read(1, 20, 30), read(null, 40, 50)]).outcome).toBe("invalid");
  });

  it("rejects a value read before its write was invoked", () => {
    const result = check([read(1, 0, 10), write(1, 20, 30)]);
    expect(result.outcome).toBe("invalid");
    if (result.outcome === "invalid") expect(result.linearized).toEqual([]);
  });

  it("accepts either value for a read after two concurrent writes", () => {
    const writes = [write(1, 0, 10, "a"), write(2, 5, 15, "b")];
    expect(check([...writes, read(1, 20, 30)]).outcome).toBe("valid");
    expect(check([...writes, read(2, 20, 30)]).outcome).toBe("valid");
    // ...but two later reads must agree on the order.
    expect(check([...writes, read(1, 20, 30), read(2, 40, 50)]).outcome).toBe("invalid");
    expect(check([...writes, read(2, 20, 30, "c"), read(2, 25, 35, "d")]).outcome).toBe("valid");
  });

  it("lets reads concurrent with a write see either value, but never new then old", () => {
    expect(check([write(1, 0, 100), read(null, 10, 20)]).outcome).toBe("valid");
    expect(check([write(1, 0, 100), read(1, 10, 20)]).outcome).toBe("valid");
    expect(check([write(1, 0, 100), read(1, 10, 20), read(null, 30, 40)]).outcome).toBe("invalid");
    expect(check([write(1, 0, 100), read(null, 10, 20), read(1, 30, 40)]).outcome).toBe("valid");
  });

  it("treats touching intervals as concurrent", () => {
    expect(check([write(1, 0, 10), read(null, 10, 20)]).outcome).toBe("valid");
    expect(check([write(1, 0, 10), read(null, 11, 20)]).outcome).toBe("invalid");
  });

  it("refuses malformed times", () => {
    expect(() => check([read(null, 10, 5)])).toThrow(RangeError);
    expect(() => check([read(null, Number.NaN, 5)])).toThrow(TypeError);
    expect(() => checkLinearizable([], register, { timeBudgetMs: -1 })).toThrow(/timeBudgetMs/);
  });
});

describe("checkLinearizable: unknown outcomes", () => {
  it("lets an unknown write take effect late", () => {
    expect(check([write(1, 0, undefined), read(null, 20, 30), read(1, 40, 50)]).outcome).toBe("valid");
  });

  it("lets an unknown write never take effect", () => {
    expect(check([write(1, 0, undefined), read(null, 20, 30), read(null, 40, 50)]).outcome).toBe("valid");
    expect(check([write(1, 0, undefined), write(2, 5, 6), read(2, 40, 50)]).outcome).toBe("valid");
  });

  it("never lets an unknown write take effect before its call, or twice", () => {
    expect(check([read(1, 0, 10), write(1, 20, undefined)]).outcome).toBe("invalid");
    expect(check([write(1, 0, undefined), read(1, 20, 30), write(2, 40, 50), read(1, 60, 70)]).outcome).toBe("invalid");
  });

  it("ignores the recorded output of an unknown operation", () => {
    expect(check([write(1, 0, 10), read(99, 20, undefined)]).outcome).toBe("valid");
  });
});

describe("HistoryRecorder", () => {
  it("records calls and returns with a logical clock", () => {
    const rec = new HistoryRecorder<RegisterInput<number>, number | null>();
    const w = rec.invoke("a", { op: "write", value: 1 });
    const r = rec.invoke("b", { op: "read" });
    rec.complete(r, null);
    rec.complete(w, null);
    const r2 = rec.invoke("b", { op: "read" });
    rec.complete(r2, 1);
    const lost = rec.invoke("a", { op: "write", value: 2 });
    rec.unknown(lost);
    rec.invoke("c", { op: "write", value: 3 }); // still pending: unknown
    const history = rec.history();
    expect(history[0]).toEqual({ id: 0, clientId: "a", input: { op: "write", value: 1 }, output: null, call: 0, return: 3 });
    expect(history[1]).toMatchObject({ id: 1, call: 1, return: 2, output: null });
    expect(history[3]).toMatchObject({ id: 3, return: undefined });
    expect(history[4]).toMatchObject({ id: 4, return: undefined });
    expect(checkLinearizable(history, register).outcome).toBe("valid");
    expect(() => rec.complete(w, null)).toThrow(/already/);
    expect(() => rec.unknown(42)).toThrow(RangeError);
  });

  it("uses an injected clock", () => {
    let now = 100;
    const rec = new HistoryRecorder<RegisterInput<number>, number | null>({ clock: () => now });
    const id = rec.invoke(1, { op: "read" });
    now = 150;
    rec.complete(id, null);
    expect(rec.history()).toEqual([{ id: 0, clientId: 1, input: { op: "read" }, output: null, call: 100, return: 150 }]);
  });
});

describe("checkLinearizable: kvModel", () => {
  type KvOp = Operation<KvModelInput, KvModelOutput>;
  const kvOp = (input: KvModelInput, output: KvModelOutput | undefined, call: number, ret: number | undefined): KvOp => ({
    input,
    output,
    call,
    return: ret,
  });

  it("accepts a valid history of every command", () => {
    const history: KvOp[] = [
      kvOp({ op: "put", key: "a", value: "1" }, { ok: true, previous: null }, 0, 10),
      kvOp({ op: "get", key: "a" }, { value: "1" }, 20, 30),
      kvOp({ op: "cas", key: "a", expected: "1", value: "2" }, { ok: true, previous: "1" }, 40, 50),
      kvOp({ op: "cas", key: "a", expected: "1", value: "3" }, { ok: false, previous: "2" }, 60, 70),
      kvOp({ op: "delete", key: "a" }, { ok: true, previous: "2" }, 80, 90),
      kvOp({ op: "delete", key: "a" }, { ok: false, previous: null }, 100, 110),
      kvOp({ op: "cas", key: "a", expected: null, value: "4" }, { ok: true, previous: null }, 120, 130),
      kvOp({ op: "cas", key: "a", expected: "4", value: null }, { ok: true, previous: "4" }, 140, 150),
      kvOp({ op: "get", key: "a" }, { value: null }, 160, 170),
      kvOp({ op: "get", key: "b" }, { value: null }, 0, 170),
    ];
    const result = checkLinearizable(history, kvModel);
    expect(result).toMatchObject({ outcome: "valid", partitions: 2 });
  });

  it("rejects two concurrent creates that both succeed", () => {
    const history: KvOp[] = [
      kvOp({ op: "cas", key: "lock", expected: null, value: "x" }, { ok: true, previous: null }, 0, 10),
      kvOp({ op: "cas", key: "lock", expected: null, value: "y" }, { ok: true, previous: null }, 5, 15),
    ];
    expect(checkLinearizable(history, kvModel).outcome).toBe("invalid");
  });

  it("checks keys independently and reports the invalid one", () => {
    const history: KvOp[] = [
      kvOp({ op: "put", key: "a", value: "1" }, { ok: true, previous: null }, 0, 10),
      kvOp({ op: "put", key: "b", value: "1" }, { ok: true, previous: null }, 0, 10),
      kvOp({ op: "get", key: "a" }, { value: "1" }, 20, 30),
      kvOp({ op: "get", key: "b" }, { value: null }, 20, 30), // stale
      kvOp({ op: "put", key: "c", value: "1" }, undefined, 0, undefined),
    ];
    const result = checkLinearizable(history, kvModel);
    expect(result.outcome).toBe("invalid");
    if (result.outcome !== "invalid") return;
    expect(result.key).toBe("b");
    expect(result.partitions).toBe(3);
    expect(result.blocked).toBe(history[3]);
    expect(result.state).toBe('{"b":"1"}');
    expect(result.message).toContain('(key "b")');
    expect(result.message).toContain('get("b") -> null');
  });

  it("checks a put's reported previous value", () => {
    const history: KvOp[] = [
      kvOp({ op: "put", key: "a", value: "1" }, { ok: true, previous: null }, 0, 10),
      kvOp({ op: "put", key: "a", value: "2" }, { ok: true, previous: null }, 20, 30),
    ];
    expect(checkLinearizable(history, kvModel).outcome).toBe("invalid");
  });
});

describe("checkLinearizable: budget", () => {
  /** n writes and a read of a value never written, all concurrent: the search must try every order. */
  function adversarial(n: number): RegOp[] {
    const ops: RegOp[] = [];
    for (let i = 0; i < n; i++) ops.push(write(i, i, 1000 + i, `c${i}`));
    ops.push(read(-1, 0, 2000));
    return ops;
  }

  it("gives up with unknown when the time budget runs out", () => {
    const started = performance.now();
    const result = checkLinearizable(adversarial(40), register, { timeBudgetMs: 30 });
    expect(result).toMatchObject({ outcome: "unknown", reason: "timeout", key: undefined, checkedPartitions: 0 });
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("reads an injected clock, so the cut-off is deterministic", () => {
    let reads = 0;
    const clock = () => reads++;
    const result = checkLinearizable(adversarial(40), register, { timeBudgetMs: 5, clock });
    expect(result.outcome).toBe("unknown");
    expect(reads).toBe(8); // start, 6 checks (the 6th is past the deadline), elapsed
  });

  it("stops with unknown when its signal fires", () => {
    const controller = new AbortController();
    controller.abort();
    const result = checkLinearizable(adversarial(40), register, { signal: controller.signal });
    expect(result).toMatchObject({ outcome: "unknown", reason: "aborted" });
  });

  it("decides a small adversarial history exhaustively", () => {
    expect(checkLinearizable(adversarial(8), register).outcome).toBe("invalid");
  });
});

// ---------------------------------------------------------------------------------------
// Randomized: histories from a linearizable reference, executed atomically at a random
// instant inside each operation's interval.

/** Replay one seed with LIN_SEED=n npx vitest run test/linearizability.test.ts */
const SEEDS = process.env["LIN_SEED"] ? [Number(process.env["LIN_SEED"])] : Array.from({ length: 150 }, (_, i) => i + 1);

interface Planned<I> {
  readonly clientId: string;
  readonly input: I;
  readonly call: number;
  readonly return: number | undefined;
  /** When it takes effect; undefined: never (only for unknown outcomes). */
  readonly at: number | undefined;
}

/** Plans operations for several sequential clients with random timing and a few unknown outcomes. */
function plan<I>(rnd: () => number, makeInput: () => I): Planned<I>[] {
  const clients = 2 + Math.floor(rnd() * 4);
  const perClient = 10 + Math.floor(rnd() * 20);
  let unknownLeft = Math.floor(rnd() * 4);
  const planned: Planned<I>[] = [];
  for (let c = 0; c < clients; c++) {
    let t = rnd() * 10;
    for (let i = 0; i < perClient; i++) {
      const call = t + rnd() * 5;
      const duration = rnd() * 20;
      if (unknownLeft > 0 && rnd() < 0.05) {
        unknownLeft--;
        // It may take effect long after the client gave up on it, or never.
        const at = rnd() < 0.5 ? call + rnd() * 200 : undefined;
        planned.push({ clientId: `c${c}`, input: makeInput(), call, return: undefined, at });
        t = call + duration;
        continue;
      }
      const ret = call + duration;
      planned.push({ clientId: `c${c}`, input: makeInput(), call, return: ret, at: call + rnd() * duration });
      t = ret;
    }
  }
  return planned;
}

/** Runs the planned operations on `execute` in the order they take effect; returns the history. */
function execute<I, O>(planned: readonly Planned<I>[], run: (input: I) => O): Operation<I, O>[] {
  const outputs = new Map<Planned<I>, O>();
  const effective = planned.filter((p) => p.at !== undefined).sort((a, b) => a.at! - b.at!);
  for (const p of effective) outputs.set(p, run(p.input));
  return planned.map((p, id) => ({ id, clientId: p.clientId, input: p.input, output: outputs.get(p), call: p.call, return: p.return }));
}

function registerHistory(seed: number): Operation<RegisterInput<number>, number | null>[] {
  const rnd = seeded(seed);
  let nextValue = 1; // every write is of a fresh value, so -1 is never written
  const planned = plan<RegisterInput<number>>(rnd, () => (rnd() < 0.5 ? { op: "write", value: nextValue++ } : { op: "read" }));
  let value: number | null = null;
  return execute(planned, (input) => {
    if (input.op === "write") {
      value = input.value;
      return null;
    }
    return value;
  });
}

describe("checkLinearizable: randomized register histories", () => {
  console.info(`linearizability: random register seeds ${SEEDS[0]}..${SEEDS[SEEDS.length - 1]} (replay one: LIN_SEED=n)`);

  it("accepts every history of an atomic register", () => {
    for (const seed of SEEDS) {
      const history = registerHistory(seed);
      const result = checkLinearizable(history, register);
      expect(result.outcome, `seed ${seed}: ${result.outcome === "invalid" ? result.message : result.outcome}`).toBe("valid");
    }
  });

  it("rejects every such history once one read returns a value never written", () => {
    let mutated = 0;
    for (const seed of SEEDS) {
      const history = registerHistory(seed);
      const reads = history.filter((op) => op.input.op === "read" && op.return !== undefined);
      if (reads.length === 0) continue;
      const victim = reads[Math.floor(seeded(seed ^ 0x5eed)() * reads.length)]!;
      const bad = history.map((op) => (op === victim ? { ...op, output: -1 } : op));
      const result = checkLinearizable(bad, register);
      expect(result.outcome, `seed ${seed}: read ${victim.id} mutated`).toBe("invalid");
      mutated++;
    }
    expect(mutated).toBeGreaterThan(SEEDS.length / 2);
  });
});

describe("checkLinearizable: randomized KV histories against KvStateMachine", () => {
  function kvHistory(seed: number): Operation<KvModelInput, KvModelOutput>[] {
    const rnd = seeded(seed);
    const key = () => `k${Math.floor(rnd() * 3)}`;
    const value = () => `v${Math.floor(rnd() * 3)}`;
    const planned = plan<KvModelInput>(rnd, () => {
      const r = rnd();
      if (r < 0.35) return { op: "get", key: key() };
      if (r < 0.65) return { op: "put", key: key(), value: value() };
      if (r < 0.75) return { op: "delete", key: key() };
      return { op: "cas", key: key(), expected: rnd() < 0.3 ? null : value(), value: rnd() < 0.2 ? null : value() };
    });
    const kv = new KvStateMachine();
    let index = 0;
    return execute<KvModelInput, KvModelOutput>(planned, (input) =>
      input.op === "get" ? { value: kv.get(input.key) ?? null } : kv.apply(input as KvCommand, { index: ++index, term: 1 }),
    );
  }

  it("accepts every history, and rejects it once a read is corrupted", () => {
    for (const seed of SEEDS.slice(0, 60)) {
      const history = kvHistory(seed);
      const result = checkLinearizable(history, kvModel);
      expect(result.outcome, `seed ${seed}: ${result.outcome === "invalid" ? result.message : result.outcome}`).toBe("valid");
      const victim = history.find((op) => op.input.op === "get" && op.return !== undefined);
      if (victim === undefined) continue;
      const bad = history.map((op) => (op === victim ? { ...op, output: { value: "never written" } } : op));
      const badResult = checkLinearizable(bad, kvModel);
      expect(badResult.outcome, `seed ${seed}`).toBe("invalid");
      if (badResult.outcome === "invalid") expect(badResult.key).toBe(victim.input.key);
    }
  });
});

describe("checkLinearizable: against brute force on small random histories", () => {
  /** Whether some order of all operations respects real time and the register's outputs. */
  function bruteForce(history: readonly RegOp[]): boolean {
    const n = history.length;
    const used = new Array<boolean>(n).fill(false);
    const order: RegOp[] = [];
    const search = (value: number | null): boolean => {
      if (order.length === n) return true;
      for (let i = 0; i < n; i++) {
        if (used[i]) continue;
        const op = history[i]!;
        // Every operation not yet placed that returned before op was called must come first.
        const mustWait = history.some((o, j) => !used[j] && j !== i && o.return !== undefined && o.return < op.call);
        if (mustWait) continue;
        let next = value;
        if (op.input.op === "write") next = op.input.value;
        else if (op.return !== undefined && op.output !== value) continue;
        used[i] = true;
        order.push(op);
        if (search(next)) return true;
        order.pop();
        used[i] = false;
      }
      return false;
    };
    return search(null);
  }

  const { readOnly: _unused, ...withoutReadOnly } = register;

  it("agrees on 3000 random histories with ties and unknown outcomes", () => {
    const rnd = seeded(4242);
    let valid = 0;
    for (let h = 0; h < 3000; h++) {
      const n = 1 + Math.floor(rnd() * 6);
      const history: RegOp[] = [];
      for (let i = 0; i < n; i++) {
        const call = Math.floor(rnd() * 8);
        const ret = rnd() < 0.15 ? undefined : call + Math.floor(rnd() * 5);
        const outputs = [null, 1, 2];
        history.push(
          rnd() < 0.5
            ? write(1 + Math.floor(rnd() * 2), call, ret)
            : read(outputs[Math.floor(rnd() * 3)]!, call, ret),
        );
      }
      const expected = bruteForce(history);
      if (expected) valid++;
      expect(check(history).outcome, JSON.stringify(history)).toBe(expected ? "valid" : "invalid");
      // The plain search, without the read-only reduction, agrees too.
      expect(checkLinearizable(history, withoutReadOnly).outcome, JSON.stringify(history)).toBe(expected ? "valid" : "invalid");
    }
    // Both outcomes are well represented.
    expect(valid).toBeGreaterThan(300);
    expect(valid).toBeLessThan(2700);
  });
});
