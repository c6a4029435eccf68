// Type-level tests of the public API (vitest typecheck; never executed). They pin down
// what the compiler infers for a user of `raftkit`, so that a change to the generics or
// the event map that breaks users' code fails here first.
import { describe, expectTypeOf, test } from "vitest";
import {
  KvStateMachine,
  MemoryNetwork,
  MemoryStorage,
  RaftError,
  RaftNode,
  isRaftError,
  type ApplyMeta,
  type ClusterConfig,
  type EntryType,
  type KvCommand,
  type KvResult,
  type NodeId,
  type RaftErrorCode,
  type RaftRole,
  type RaftStatus,
  type StateMachine,
} from "raftkit";
import { runSimulation, type SimulationResult } from "raftkit/testing";

type Add = { readonly add: number };

class Counter implements StateMachine<Add, number> {
  value = 0;
  apply(cmd: Add): number {
    return (this.value += cmd.add);
  }
}

/** A state machine whose apply is async: Result is what the promise resolves with. */
class AsyncCounter {
  value = 0;
  async apply(cmd: Add, meta: ApplyMeta): Promise<{ total: number; index: number }> {
    this.value += cmd.add;
    return { total: this.value, index: meta.index };
  }
}

const network = new MemoryNetwork();
const adapters = { storage: new MemoryStorage(), transport: network.transport("a") };
const counterNode = new RaftNode({ id: "a", peers: ["a"], stateMachine: new Counter(), ...adapters });
const asyncNode = new RaftNode({ id: "a", peers: ["a"], stateMachine: new AsyncCounter(), ...adapters });
const kvNode = new RaftNode({ id: "a", peers: ["a"], stateMachine: new KvStateMachine(), ...adapters });

describe("RaftNode<Cmd, Result> infers both from the state machine", () => {
  test("a class implementing StateMachine", () => {
    expectTypeOf(counterNode).toEqualTypeOf<RaftNode<Add, number>>();
    expectTypeOf(counterNode.propose({ add: 1 })).toEqualTypeOf<Promise<number>>();
  });

  test("an async apply: propose resolves with the awaited result, not a promise of one", () => {
    expectTypeOf(asyncNode.propose({ add: 1 })).toEqualTypeOf<Promise<{ total: number; index: number }>>();
  });

  test("the KV state machine", () => {
    expectTypeOf(kvNode).toEqualTypeOf<RaftNode<KvCommand, KvResult>>();
    expectTypeOf(kvNode.propose).parameter(0).toEqualTypeOf<KvCommand>();
    expectTypeOf(kvNode.propose({ op: "put", key: "k", value: "v" })).resolves.toEqualTypeOf<KvResult>();
  });

  test("the other calls", () => {
    expectTypeOf(counterNode.read()).toEqualTypeOf<Promise<void>>();
    expectTypeOf(counterNode.status()).toEqualTypeOf<RaftStatus>();
    expectTypeOf(counterNode.snapshot()).toEqualTypeOf<Promise<number>>();
    expectTypeOf(counterNode.addMember("b")).toEqualTypeOf<Promise<ClusterConfig>>();
    expectTypeOf(counterNode.transferLeadership()).toEqualTypeOf<Promise<NodeId>>();
    expectTypeOf(counterNode.leaderId).toEqualTypeOf<NodeId | null>();
  });
});

describe("propose rejects a command of the wrong type at compile time", () => {
  test("a custom command", () => {
    // @ts-expect-error a string is not an Add
    void counterNode.propose("add 1");
    // @ts-expect-error the field is missing
    void counterNode.propose({});
    // @ts-expect-error the field has the wrong type
    void counterNode.propose({ add: "1" });
  });

  test("a KV command", () => {
    // @ts-expect-error not one of the ops
    void kvNode.propose({ op: "increment", key: "k" });
    // @ts-expect-error a put needs a value
    void kvNode.propose({ op: "put", key: "k" });
    // @ts-expect-error a cas needs `expected`
    void kvNode.propose({ op: "cas", key: "k", value: "v" });
  });

  test("the state machine must match the codec's command type", () => {
    new RaftNode({
      id: "a",
      peers: ["a"],
      stateMachine: new Counter(),
      // @ts-expect-error a codec of strings for a node of Add commands
      codec: { encode: (s: string) => new TextEncoder().encode(s), decode: (b: Uint8Array) => new TextDecoder().decode(b) },
      ...adapters,
    });
  });
});

describe("the event map is typed", () => {
  test("listener parameters are inferred", () => {
    counterNode.on("role", (role, term) => {
      expectTypeOf(role).toEqualTypeOf<RaftRole>();
      expectTypeOf(term).toEqualTypeOf<number>();
    });
    counterNode.on("leader", (leaderId, term) => {
      expectTypeOf(leaderId).toEqualTypeOf<NodeId | null>();
      expectTypeOf(term).toEqualTypeOf<number>();
    });
    counterNode.on("apply", (index, term, type) => {
      expectTypeOf(index).toEqualTypeOf<number>();
      expectTypeOf(type).toEqualTypeOf<EntryType>();
    });
    counterNode.on("config", (config) => expectTypeOf(config).toEqualTypeOf<ClusterConfig>());
    counterNode.once("snapshot", (index, term) => expectTypeOf([index, term]).toEqualTypeOf<number[]>());
    counterNode.on("error", (error) => expectTypeOf(error).toEqualTypeOf<Error>());
  });

  test("an unknown event or a wrong listener does not compile", () => {
    // @ts-expect-error no such event
    counterNode.on("roleChange", () => {});
    // @ts-expect-error the term is a number
    counterNode.on("term", (term: string) => void term);
    // @ts-expect-error the role event carries a role and a term
    counterNode.emit("role", "leader");
  });
});

describe("errors and the testing entry point", () => {
  test("isRaftError narrows to RaftError", () => {
    const err: unknown = new RaftError("BUSY", "busy");
    if (isRaftError(err, "NOT_LEADER")) {
      expectTypeOf(err).toEqualTypeOf<RaftError>();
      expectTypeOf(err.code).toEqualTypeOf<RaftErrorCode>();
      expectTypeOf(err.leaderId).toEqualTypeOf<string | null>();
    }
    // @ts-expect-error not a RaftErrorCode
    isRaftError(err, "NOT_FOUND");
  });

  test("runSimulation takes the state machine's types", () => {
    expectTypeOf(runSimulation<Add, number>({ seed: 1, createStateMachine: () => new Counter(), nextCommand: (rng) => ({ add: rng.int(3) }) })).toEqualTypeOf<
      Promise<SimulationResult>
    >();
    // @ts-expect-error nextCommand must produce the state machine's commands
    void runSimulation<Add, number>({ seed: 1, createStateMachine: () => new Counter(), nextCommand: () => ({ add: "1" }) });
  });
});
