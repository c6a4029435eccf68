import type { Entry, Message, Snapshot } from "../core/messages.js";
import { RaftError } from "../errors.js";
import { DriverChanges } from "./driver-changes.js";
import type { ProposalRequest } from "./driver-state.js";

/**
 * The engine behind `RaftNode` (raft-node.ts), the last layer of the chain that starts in
 * driver-state.ts: the core's inputs from the network and the clock, and the Ready loop
 * that persists, sends, applies and advances.
 */
export class NodeDriver<Cmd, Result> extends DriverChanges<Cmd, Result> {
  // ---------------------------------------------------------------- inputs

  receive(m: Message): void {
    if (this.state !== "running" || this.core === null) return;
    try {
      this.core.step(m);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.scheduleLoop();
  }

  armTick(): void {
    this.tickTimer = this.opts.clock.setTimeout(() => {
      if (this.state !== "running" || this.core === null) return;
      this.armTick();
      try {
        this.core.tick();
      } catch (err) {
        this.fail(err);
        return;
      }
      // Refused requests wait for a leader; retry them at most once a tick.
      if (this.parkedProposals.length > 0 || this.parkedReads.length > 0) this.unpark();
      this.scheduleLoop();
    }, this.opts.tickMs);
  }

  // ---------------------------------------------------------------- the Ready loop

  override scheduleLoop(): void {
    if (this.loopRunning || this.loopScheduled) return;
    this.loopScheduled = true;
    queueMicrotask(() => {
      this.loopScheduled = false;
      void this.runLoop();
    });
  }

  /** Handles Ready after Ready, in the order `Ready` documents, until the core is idle. */
  protected async runLoop(): Promise<void> {
    if (this.loopRunning) return;
    this.loopRunning = true;
    try {
      for (;;) {
        const core = this.core;
        if (core === null || this.state !== "running") break;
        if (!core.hasReady()) {
          if (this.snapshotWaiters.length > 0 || this.finishedSnapshot !== null) await this.maybeSnapshot(core);
          break;
        }
        const rd = core.ready();
        // 0. The leader's replication goes out while its own write runs; snapshot chunks
        // are read from storage and sent as the reads complete.
        for (const m of rd.earlyMessages) this.opts.transport.send(m);
        for (const c of rd.snapshotOut) this.snapshotSender.enqueue(c);
        // A snapshot from the leader goes to storage chunk by chunk, as it arrives.
        let installed: Snapshot | null = null;
        if (rd.snapshotIn.length > 0 || rd.snapshot !== null) {
          installed = await this.receiveSnapshot(rd);
          if (this.state !== "running") break;
        }
        // 1. Persist: one durable write for everything this round produced (group commit).
        // A write of the commit index alone (`mustSync` false) is one nothing below depends
        // on (losing it in a crash is harmless), so sending and applying do not wait for it;
        // only advance() does. That takes a storage round trip off every commit.
        let commitWrite: Promise<unknown> | null = null;
        if (rd.hardState !== null || rd.entries.length > 0 || installed !== null) {
          const batch = {
            entries: rd.entries,
            ...(rd.mustSync ? {} : { sync: false }),
            ...(rd.hardState === null ? {} : { hardState: rd.hardState }),
            ...(installed === null ? {} : { snapshot: installed }),
          };
          // Settles to the error, if any: a rejection must not go unhandled while we apply.
          const written = this.opts.storage.save(batch).then(
            () => null,
            (err: unknown) => new RaftError("STORAGE", `storage save failed on ${this.id}`, { cause: err }),
          );
          if (rd.mustSync) {
            const failure = await written;
            if (failure !== null) throw failure;
            if (this.state !== "running") break;
          } else commitWrite = written;
        }
        // 2. Send, now that what the messages promise is durable.
        for (const m of rd.messages) this.opts.transport.send(m);
        // Where forwarded proposals landed: known before applying, so that an entry
        // committed in this same Ready resolves its proposal with the result.
        this.settleForwarded(rd);
        // 3. Restore from a leader's snapshot, then apply.
        if (installed !== null) {
          await this.restoreStateMachine(installed);
          if (this.state !== "running") return;
          core.snapshotInstalled(installed);
        }
        for (const e of rd.committedEntries) {
          const pending = this.applyEntry(e);
          if (pending !== undefined) {
            await pending;
            if (this.state !== "running") return;
          }
        }
        // 4. Reads.
        this.settleReadStates(rd);
        if (commitWrite !== null) {
          const failure = await commitWrite;
          if (failure !== null) throw failure;
          if (this.state !== "running") return;
        }
        core.advance(rd);
        this.emitChanges(core);
        await this.maybeSnapshot(core);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.loopRunning = false;
    }
  }

  /**
   * Applies one entry; returns a promise only when the state machine answered with one,
   * so that a synchronous state machine costs no microtask per entry.
   */
  protected applyEntry(e: Entry): Promise<void> | undefined {
    const waiting = this.appendedProposals.get(e.index);
    if (e.type !== "command") {
      this.afterApply(e, waiting, undefined);
      return undefined;
    }
    // Our own proposal at (index, term) is this very entry: use the command as proposed.
    const cmd = waiting !== undefined && waiting.term === e.term ? waiting.request.command : this.opts.codec.decode(e.data);
    const r = this.opts.stateMachine.apply(cmd, { index: e.index, term: e.term });
    if (r instanceof Promise) return r.then((result) => this.afterApply(e, waiting, result));
    this.afterApply(e, waiting, r);
    return undefined;
  }

  protected afterApply(e: Entry, waiting: { term: number; request: ProposalRequest<Cmd, Result> } | undefined, result: Result | undefined): void {
    if (waiting !== undefined) {
      this.appendedProposals.delete(e.index);
      if (waiting.term === e.term) waiting.request.pending.resolve(result as Result);
      else waiting.request.pending.reject(new RaftError("DROPPED", `proposal at index ${e.index} was replaced by an entry of term ${e.term}; it was not committed`));
    }
    if (e.type === "config") {
      for (const w of this.configWaiters) {
        if (w.index !== e.index) continue;
        if (w.term === e.term) w.entered = true;
        else w.pending.reject(new RaftError("DROPPED", `membership change at index ${e.index} was replaced by an entry of term ${e.term}`));
      }
    }
    this.appliedIndex = e.index;
    this.notify("apply", e.index, e.term, e.type);
    this.serveReads(e.index);
  }
}
