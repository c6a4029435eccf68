// Who is in the cluster and where: the Raft address of each member comes from the
// configuration (RaftNode's `config` event carries its address book), and the URL of its
// HTTP API follows the Raft port + 1000 convention (this node's own is its --client-bind).
import type { ClusterConfig, NodeId, RaftStatus } from "raftkit";
import { type HostPort, formatHostPort, httpBaseUrl, parseHostPort } from "./address.js";
import { clientAddressOfRaft } from "./args.js";

/** A member as GET /v1/status and the /v1/members routes show it. */
export interface MemberView {
  readonly id: NodeId;
  /** Where its Raft listener is reached, "host:port"; null when no address is known. */
  readonly address: string | null;
  /** The base URL of its HTTP API; null when no address is known. */
  readonly clientUrl: string | null;
  /** Kept for clients of the first API version: `role === "voter"`. */
  readonly voter: boolean;
  /** A learner receives the log but does not vote (yet: a member being added starts as one). */
  readonly role: "voter" | "learner";
}

export class AddressBook {
  private readonly raft = new Map<NodeId, string>();

  constructor(
    private readonly selfId: NodeId,
    private readonly selfClient: HostPort,
    initial: Iterable<readonly [NodeId, string]>,
  ) {
    for (const [id, address] of initial) this.raft.set(id, address);
  }

  /** Takes in a configuration's addresses; members it gives none for keep what was known. */
  update(config: ClusterConfig): void {
    for (const [id, address] of Object.entries(config.addresses ?? {})) this.raft.set(id, address);
  }

  /** Adds addresses learned elsewhere (from the cluster, when joining). */
  learn(id: NodeId, address: string): void {
    this.raft.set(id, address);
  }

  address(id: NodeId): string | undefined {
    return this.raft.get(id);
  }

  clientUrl(id: NodeId): string | undefined {
    if (id === this.selfId) return httpBaseUrl(this.selfClient);
    const address = this.raft.get(id);
    if (address === undefined) return undefined;
    let client: HostPort | null;
    try {
      client = clientAddressOfRaft(parseHostPort(address));
    } catch {
      return undefined;
    }
    return client === null ? undefined : httpBaseUrl(client);
  }

  /** The members of a configuration (or of a status), voters first, each group by id. */
  view(members: { readonly voters: readonly NodeId[]; readonly learners: readonly NodeId[] }): MemberView[] {
    const one = (id: NodeId, role: MemberView["role"]): MemberView => ({
      id,
      address: this.raft.get(id) ?? null,
      clientUrl: this.clientUrl(id) ?? null,
      voter: role === "voter",
      role,
    });
    return [...[...members.voters].sort(byId).map((id) => one(id, "voter")), ...[...members.learners].sort(byId).map((id) => one(id, "learner"))];
  }
}

/** Numeric ids in numeric order ("2" before "10"), anything else after them. */
export function byId(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isInteger(na) && Number.isInteger(nb)) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether `id` is a voter or a learner in `status`. */
export function isMember(status: Pick<RaftStatus, "voters" | "learners">, id: NodeId): boolean {
  return status.voters.includes(id) || status.learners.includes(id);
}

/** "host:port" in its canonical spelling, or null when `text` is not one. */
export function canonicalAddress(text: string): string | null {
  try {
    return formatHostPort(parseHostPort(text));
  } catch {
    return null;
  }
}
