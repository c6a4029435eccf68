import { isJoint, isVoter, sameMembers } from "../core/membership.js";
import type { ClusterConfig } from "../core/messages.js";
import type { Raft } from "../core/raft.js";
import { RaftError } from "../errors.js";
import { DriverSnapshots } from "./driver-snapshots.js";

/**
 * What changed in the core after a Ready: its events, and what follows the leader and the
 * configuration (forwarded and parked requests, the address book, the callers waiting for
 * a membership change or a leadership transfer).
 */
export abstract class DriverChanges<Cmd, Result> extends DriverSnapshots<Cmd, Result> {
  protected emitChanges(core: Raft): void {
    const o = this.observed;
    if (core.term !== o.term) {
      o.term = core.term;
      this.notify("term", core.term);
    }
    if (core.role !== o.role) {
      o.role = core.role;
      this.opts.logger.info("role changed", { id: this.id, role: core.role, term: core.term });
      this.notify("role", core.role, core.term);
    }
    if (core.leader !== o.leader) {
      o.leader = core.leader;
      if (core.leader !== null && this.retiredAddresses.size > 0 && isVoter(core.config, core.leader)) {
        this.retiredAddresses.clear();
        this.pushAddresses();
      }
      this.abandonForwarded();
      this.opts.logger.debug("leader changed", { id: this.id, leader: core.leader, term: core.term });
      this.notify("leader", core.leader, core.term);
      if (core.leader !== null && (this.parkedProposals.length > 0 || this.parkedReads.length > 0)) this.unpark();
    }
    if (core.log.committed !== o.commit) {
      o.commit = core.log.committed;
      this.notify("commit", o.commit);
    }
    if (core.config !== o.config) {
      o.config = core.config;
      this.onConfigChange(core.config);
    }
    if (this.transferWaiters.length > 0) {
      this.transferWaiters = this.transferWaiters.filter((w) => {
        if (w.pending.settled) return false;
        if (core.leader === w.target) w.pending.resolve(w.target);
        else if (core.role === "leader" && core.leadTransferee === null) {
          w.pending.reject(new RaftError("TIMEOUT", `${w.target} did not take over within an election timeout; ${this.id} still leads`));
        } else return true;
        return false;
      });
    }
  }

  protected onConfigChange(config: ClusterConfig): void {
    this.notify("config", config);
    const addresses = config.addresses;
    if (addresses !== undefined) {
      // Members just removed stay reachable until a leader of the new configuration is
      // known: a removed leader keeps leading until it has handed over, and its last
      // AppendEntries and TimeoutNow must still get through.
      const previous = this.addressBook;
      for (const [id, address] of previous) if (addresses[id] === undefined) this.retiredAddresses.set(id, address);
      for (const id of Object.keys(addresses)) this.retiredAddresses.delete(id);
      this.addressBook = new Map(Object.entries(addresses));
      this.pushAddresses();
    }
    this.configWaiters = this.configWaiters.filter((w) => {
      if (w.pending.settled) return false;
      if (w.entered && !isJoint(config) && sameMembers(config, w.target)) {
        w.pending.resolve(config);
        return false;
      }
      return true;
    });
  }

  /** Tells the transport where the members (and recently removed members) are. */
  protected pushAddresses(): void {
    if (!this.opts.transport.setPeerAddresses) return;
    const map = new Map([...this.retiredAddresses, ...this.addressBook]);
    map.delete(this.id);
    this.opts.transport.setPeerAddresses(map);
  }
}
