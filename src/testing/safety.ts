import type { Raft } from "../core/raft.js";
import type { NodeId } from "../core/messages.js";

/**
 * A broken safety property found by the simulator.
 * @public
 */
export class SafetyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SafetyViolation";
  }
}

interface NodeWatch {
  verifiedUpTo: number;
  verifiedTerm: number;
  lastCommit: number;
  leaderTermChecked: number;
  appliedIds: Set<string>;
}

interface LoggedEntry {
  readonly prevTerm: number;
  readonly data: Uint8Array;
  /** The nodes whose log held it (as far as the checker saw). */
  readonly holders: Set<NodeId>;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Checks Raft's safety properties (the paper's Figure 3) over a whole simulated cluster,
 * incrementally, after every step:
 * election safety (one leader per term), log matching, leader completeness, state
 * machine safety (one command per index, each applied at most once per node), a commit
 * index that never moves back, and resolved proposals present in every later leader's log.
 * @public
 */
export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Index → term of every entry known committed. Index 0 unused. */
  private readonly committedTerms: number[] = [0];
  /** Index → term → what every log holding (index, term) must agree on. */
  private readonly logged = new Map<number, Map<number, LoggedEntry>>();
  /** Index → the command id applied there by anyone. */
  private readonly appliedAt = new Map<number, string>();
  private readonly resolved: { id: string; index: number; term: number }[] = [];
  private readonly watches = new Map<NodeId, NodeWatch>();

  /**
   * Node `id` crashed. Entries only its memory held (never durable on its disk, never in
   * another node's log) are gone as if they never were: Raft lets a node that lost the
   * record of its own vote win that term again (nobody learned of the first win, since its
   * messages of a term wait for the term to be durable) and write other entries there.
   * @param id - The node.
   * @param durable - Whether its disk holds the entry (index, term), or compacted it.
   */
  onCrash(id: NodeId, durable: (index: number, term: number) => boolean): void {
    for (const [index, byTerm] of this.logged) {
      for (const [term, entry] of byTerm) {
        if (!entry.holders.has(id) || durable(index, term)) continue;
        entry.holders.delete(id);
        if (entry.holders.size === 0) byTerm.delete(term);
      }
      if (byTerm.size === 0) this.logged.delete(index);
    }
  }

  /** A node (re)started: its volatile state starts over. */
  startIncarnation(id: NodeId): void {
    this.watches.set(id, { verifiedUpTo: 0, verifiedTerm: 0, lastCommit: 0, leaderTermChecked: 0, appliedIds: new Set() });
  }

  /** Node `id` applied command `commandId` at `index`. */
  onApply(id: NodeId, index: number, commandId: string): void {
    const w = this.watch(id);
    if (w.appliedIds.has(commandId)) throw new SafetyViolation(`${id} applied command ${commandId} twice (again at index ${index})`);
    w.appliedIds.add(commandId);
    const other = this.appliedAt.get(index);
    if (other !== undefined && other !== commandId) throw new SafetyViolation(`state machine safety: index ${index} applied as ${other} elsewhere but as ${commandId} on ${id}`);
    this.appliedAt.set(index, commandId);
  }

  /** Node `id` restored a snapshot whose state includes exactly the commands `commandIds`. */
  onRestore(id: NodeId, commandIds: Iterable<string>): void {
    this.watch(id).appliedIds = new Set(commandIds);
  }

  /** A proposal's promise resolved: the command is committed at (`index`, `term`). */
  onResolved(commandId: string, index: number, term: number): void {
    const applied = this.appliedAt.get(index);
    if (applied !== commandId) throw new SafetyViolation(`proposal ${commandId} resolved at index ${index}, where ${applied ?? "nothing"} was applied`);
    this.resolved.push({ id: commandId, index, term });
  }

  /** The highest index of a resolved proposal so far. */
  maxResolvedIndex(): number {
    let m = 0;
    for (const r of this.resolved) if (r.index > m) m = r.index;
    return m;
  }

  /** Checks one live node's state. */
  check(id: NodeId, core: Raft): void {
    const w = this.watch(id);
    const log = core.log;

    // Election safety: at most one leader per term (Raft §5.2).
    if (core.role === "leader") {
      const other = this.leaderOfTerm.get(core.term);
      if (other !== undefined && other !== id) throw new SafetyViolation(`election safety: ${other} and ${id} both led term ${core.term}`);
      this.leaderOfTerm.set(core.term, id);
    }

    // The commit index never moves back, and committed entries never change.
    if (log.committed < w.lastCommit) throw new SafetyViolation(`${id}'s commit index moved back from ${w.lastCommit} to ${log.committed}`);
    for (let i = Math.max(w.lastCommit + 1, log.firstIndex()); i <= log.committed; i++) {
      const t = log.term(i)!;
      const known = this.committedTerms[i];
      if (known === undefined) {
        if (i !== this.committedTerms.length) {
          // Another node committed further already; fill in order only.
          throw new SafetyViolation(`internal: committed index ${i} recorded out of order`);
        }
        this.committedTerms.push(t);
      } else if (known !== t) {
        throw new SafetyViolation(`committed entry ${i} has term ${t} on ${id} but ${known} elsewhere`);
      }
    }
    w.lastCommit = log.committed;

    // Log matching (Raft §5.3): two entries with the same index and term hold the same
    // command and follow the same history. Checked incrementally: entries at or below the
    // commit index never change, so a truncation only sends us back to it.
    if (w.verifiedUpTo > log.lastIndex() || (w.verifiedUpTo >= log.firstIndex() - 1 && log.term(w.verifiedUpTo) !== w.verifiedTerm)) {
      w.verifiedUpTo = Math.min(w.verifiedUpTo, log.committed);
    }
    const from = Math.max(w.verifiedUpTo + 1, log.firstIndex());
    for (let i = from; i <= log.lastIndex(); i++) {
      const e = log.entry(i)!;
      const prevTerm = log.term(i - 1) ?? -1;
      let byTerm = this.logged.get(i);
      if (byTerm === undefined) {
        byTerm = new Map();
        this.logged.set(i, byTerm);
      }
      const seen = byTerm.get(e.term);
      if (seen === undefined) byTerm.set(e.term, { prevTerm, data: e.data, holders: new Set([id]) });
      else if (seen.prevTerm !== prevTerm || !sameBytes(seen.data, e.data)) {
        throw new SafetyViolation(`log matching: entry (${i}, term ${e.term}) on ${id} differs from another log's`);
      } else seen.holders.add(id);
    }
    w.verifiedUpTo = log.lastIndex();
    w.verifiedTerm = log.lastTerm();

    // Leader completeness (Raft §5.4): a leader holds every committed entry, and every
    // entry of a resolved proposal.
    if (core.role === "leader" && w.leaderTermChecked !== core.term) {
      w.leaderTermChecked = core.term;
      for (let i = log.firstIndex(); i < this.committedTerms.length; i++) {
        if (log.term(i) !== this.committedTerms[i]) {
          throw new SafetyViolation(`leader completeness: ${id} leads term ${core.term} without committed entry ${i} (term ${this.committedTerms[i]})`);
        }
      }
      for (const r of this.resolved) {
        if (r.index >= log.firstIndex() && log.term(r.index) !== r.term) {
          throw new SafetyViolation(`resolved proposal ${r.id} (index ${r.index}, term ${r.term}) is missing from the log of ${id}, leader of term ${core.term}`);
        }
      }
    }
  }

  /**
   * Checks what a leader believes against its followers' logs: every entry it counts as
   * replicated on a follower of its term (the follower's match index) is really there. A
   * follower that dropped an acknowledged entry would let a commit rest on a copy that no
   * longer exists.
   */
  checkReplication(leaderId: NodeId, leader: Raft, followers: ReadonlyMap<NodeId, Raft>): void {
    if (leader.role !== "leader") return;
    for (const [id, pr] of leader.progress) {
      const f = followers.get(id);
      if (f === undefined || f.term !== leader.term || pr.match === 0) continue;
      const theirs = f.log.term(pr.match);
      const ours = leader.log.term(pr.match);
      // Compacted on either side (term unknown): only the length can be checked.
      if (pr.match > f.log.lastIndex() || (theirs !== undefined && ours !== undefined && theirs !== ours)) {
        throw new SafetyViolation(`${leaderId} (leader of term ${leader.term}) counts entry ${pr.match} as replicated on ${id}, whose log holds ${f.log.lastIndex()} with term ${theirs ?? "none"} there`);
      }
    }
  }

  private watch(id: NodeId): NodeWatch {
    const w = this.watches.get(id);
    if (w === undefined) throw new SafetyViolation(`internal: node ${id} checked before it started`);
    return w;
  }
}
