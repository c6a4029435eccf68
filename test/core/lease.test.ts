// Lease reads: dissertation §6.4.1. The leader may skip the heartbeat round of ReadIndex
// for as long as no other leader can have been elected: until the followers that
// acknowledged its latest heartbeat could start granting votes.
import { describe, expect, it } from "vitest";
import { Network, item } from "./harness.js";

const ABC = ["a", "b", "c"];
const LEASE = { checkQuorum: true, leaseTicks: 7 };

function leaderWithLease(): Network {
  const net = Network.cluster(ABC, LEASE);
  net.elect("a");
  net.get("a").propose([item()]);
  net.stabilize();
  net.tick("a"); // a heartbeat round that b and c acknowledge
  net.stabilize();
  return net;
}

describe("lease reads (dissertation §6.4.1)", () => {
  it("serves a read at once while a majority acknowledged a heartbeat less than leaseTicks ago", () => {
    const net = leaderWithLease();
    const a = net.get("a");
    net.hold(() => true); // no round trip can complete
    a.readIndex(1, true);
    net.stabilize();
    expect(net.readStates.get("a")).toEqual([{ requestId: 1, index: a.log.committed }]);
  });

  it("falls back to a heartbeat round once the lease expired without acknowledgements", () => {
    const net = leaderWithLease();
    const a = net.get("a");
    net.hold(() => true);
    net.tick("a", 7);
    a.readIndex(2, true);
    net.stabilize();
    expect(net.readStates.get("a")).toEqual([]);
    net.heal();
    net.release();
    net.stabilize();
    expect(net.readStates.get("a")).toEqual([{ requestId: 2, index: a.log.committed }]);
  });

  it("never serves from the lease without check-quorum (followers would not honour it)", () => {
    const net = Network.cluster(ABC, { checkQuorum: false, leaseTicks: 7 });
    net.elect("a");
    net.get("a").propose([item()]);
    net.stabilize();
    net.tick("a");
    net.stabilize();
    expect(net.get("a").leaseValid()).toBe(false);
  });

  it("is void for the rest of the term once a TimeoutNow went out, which may outlive the transfer", () => {
    const net = leaderWithLease();
    const a = net.get("a");
    expect(a.leaseValid()).toBe(true);
    net.drop((m) => m.type === "TimeoutNow");
    expect(a.transferLeadership("b")).toEqual({ target: "b" });
    net.stabilize();
    for (let i = 0; i < 20; i++) {
      net.tick("a"); // the transfer times out after an election timeout; a keeps leading
      net.stabilize();
    }
    expect(a.role).toBe("leader");
    expect(a.leaseValid()).toBe(false);
  });
});
