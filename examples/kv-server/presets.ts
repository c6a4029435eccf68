// The timing presets behind --fast-mode, --debug-mode and --demo-mode.

export interface TimingPreset {
  readonly name: "fast" | "debug" | "demo";
  /** RaftNode tickMs. */
  readonly tickMs: number;
  /** RaftNode electionTicks: a follower campaigns after [electionTicks + 1, 2 * electionTicks] ticks of silence. */
  readonly electionTicks: number;
  /** RaftNode heartbeatTicks. */
  readonly heartbeatTicks: number;
  /** How long the server waits for a write or a linearizable read before answering 504. */
  readonly requestTimeoutMs: number;
  /**
   * How long the server waits for a membership change (POST or DELETE /v1/members) before
   * answering 504: adding a member includes copying the log to it.
   */
  readonly membershipTimeoutMs: number;
  /** How long `--join` keeps asking the cluster to add this node before the server gives up. */
  readonly joinRetryMs: number;
  /** The longest gap between reconnection attempts to a peer that went away. */
  readonly reconnectMaxMs: number;
  /** How long the interactive client keeps looking for a leader before it gives up on a command. */
  readonly clientRetryMs: number;
  /** Whether raftkit's own debug output is logged. */
  readonly debugLog: boolean;
}

// Every request timeout is several election timeouts long, so that a write caught by a
// failover usually still answers (committed by the new leader or refused) rather than 504.
export const presets: Readonly<Record<TimingPreset["name"], TimingPreset>> = {
  // Fails over within about half a second on a LAN; the default. A follower campaigns
  // 210-400 ms after the last heartbeat (20 ms apart): several times the event-loop lag
  // of a server under heavy load (~50 ms), and 10 ms ticks randomise the timeouts finely
  // enough that two survivors rarely campaign together and split the vote.
  fast: { name: "fast", tickMs: 10, electionTicks: 20, heartbeatTicks: 2, requestTimeoutMs: 5_000, membershipTimeoutMs: 30_000, joinRetryMs: 120_000, reconnectMaxMs: 1_000, clientRetryMs: 5_000, debugLog: false },
  // Slow timers and raftkit's debug log, for following one node's behaviour line by line.
  debug: { name: "debug", tickMs: 200, electionTicks: 25, heartbeatTicks: 2, requestTimeoutMs: 30_000, membershipTimeoutMs: 120_000, joinRetryMs: 600_000, reconnectMaxMs: 5_000, clientRetryMs: 30_000, debugLog: true },
  // Elections take seconds, so that a person can kill the leader and watch the others react.
  demo: { name: "demo", tickMs: 100, electionTicks: 30, heartbeatTicks: 5, requestTimeoutMs: 15_000, membershipTimeoutMs: 60_000, joinRetryMs: 300_000, reconnectMaxMs: 2_000, clientRetryMs: 15_000, debugLog: false },
};
