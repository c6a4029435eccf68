// The command line of raftkit-kv (the KV server spec; docs/kv-server.md): parsed
// into either a server configuration or a client configuration, never half of each.
import { parseArgs } from "node:util";
import { type HostPort, formatHostPort, parseHostPort } from "./address.js";
import { type TimingPreset, presets } from "./presets.js";

/** A bad command line: main prints the message (and the usage) and exits with 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly showUsage = true,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** One member of the initial cluster: its id and where its Raft listener is reached. */
export interface Member {
  readonly id: string;
  readonly raft: HostPort;
}

/** The files behind --tls-cert, --tls-key and --tls-ca (PEM), read when the server starts. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

export interface ServerConfig {
  readonly kind: "server";
  readonly nodeId: string;
  /** Where this node listens for Raft traffic. */
  readonly bind: HostPort;
  /** Every initial member, this node included, in id order; empty with --join. */
  readonly members: readonly Member[];
  /** With --join: the HTTP API of a member of the cluster to join. */
  readonly join: HostPort | null;
  /** Mutual TLS for Raft traffic; plain TCP when null. */
  readonly tls: TlsFiles | null;
  /** Where the HTTP API listens. */
  readonly clientBind: HostPort;
  readonly dataDir: string;
  readonly timing: TimingPreset;
  readonly verbose: boolean;
}

export interface ClientConfig {
  readonly kind: "client";
  readonly members: readonly Member[];
  readonly timing: TimingPreset;
}

export type CommandLine = ServerConfig | ClientConfig | { readonly kind: "help" };

/** The HTTP API of a member is its Raft port + 1000 unless it was started with --client-bind. */
export const CLIENT_PORT_OFFSET = 1000;

export const usage = `raftkit-kv: the raftkit example key-value server and its interactive client

Start a server (one per node):
  raftkit-kv --node-id N --cluster HOST:PORT,HOST:PORT,... --data-dir DIR [options]
  raftkit-kv --node-id N --peers 1=HOST:PORT,2=HOST:PORT,... --data-dir DIR [options]
Add a server to a running cluster:
  raftkit-kv --node-id N --bind HOST:PORT --join HTTP-HOST:PORT --data-dir DIR [options]
Open the interactive client (finds the leader itself):
  raftkit-kv --cluster HOST:PORT,HOST:PORT,...

Options:
  --node-id N               this node's id, 1-based; with --cluster, node N is the N-th address
  --bind HOST:PORT          where this node listens for Raft traffic
                            (default: its own address in --cluster / --peers)
  --cluster A,B,C           the Raft addresses of all initial members, in node-id order
  --peers 1=A,2=B,3=C       the same, ids explicit
  --client-bind HOST:PORT   where the HTTP API listens (default: the --bind host, port + 1000);
                            other nodes and the client assume Raft port + 1000 for redirects
  --data-dir DIR            durable state (LevelDB); required for a server, created if missing
  --join HOST:PORT          the HTTP API of any member: start empty and ask the cluster to add
                            this node (id --node-id, Raft address --bind); a data dir that
                            already belongs to the cluster is not added again
  --tls-cert FILE           this node's certificate (PEM): Raft traffic uses mutual TLS
  --tls-key FILE            its private key (PEM)
  --tls-ca FILE             the CA certificate (PEM) that every member's certificate chains to
  --fast-mode               timing preset, the default: ${describePreset(presets.fast)}
  --debug-mode              ${describePreset(presets.debug)};
                            also logs raftkit's debug output
  --demo-mode               ${describePreset(presets.demo)}:
                            slow enough to watch a failover
  --verbose                 log each role, term and leader change
  -h, --help                print this text

Exit codes: 0 clean stop, 1 runtime failure, 2 bad command line.`;

function describePreset(p: TimingPreset): string {
  const ms = (n: number): string => (n >= 1000 ? `${n / 1000} s` : `${n} ms`);
  return `tick ${ms(p.tickMs)}, election timeout ${ms(p.tickMs * p.electionTicks)}-${ms(2 * p.tickMs * p.electionTicks)}, heartbeat ${ms(p.tickMs * p.heartbeatTicks)}`;
}

const options = {
  "node-id": { type: "string" },
  bind: { type: "string" },
  cluster: { type: "string" },
  peers: { type: "string" },
  "client-bind": { type: "string" },
  "data-dir": { type: "string" },
  join: { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-ca": { type: "string" },
  "fast-mode": { type: "boolean" },
  "debug-mode": { type: "boolean" },
  "demo-mode": { type: "boolean" },
  verbose: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Parses `argv` (without the node and script paths). @throws UsageError */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (err) {
    // parseArgs' messages name the flag ("Unknown option '--x'"); keep them.
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return { kind: "help" };
  const timing = pickPreset(values);
  if (values.cluster !== undefined && values.peers !== undefined) throw new UsageError("give either --cluster or --peers, not both");
  if (values.join !== undefined && (values.cluster !== undefined || values.peers !== undefined)) {
    throw new UsageError("give either --join (to join a running cluster) or --cluster / --peers (to start one), not both");
  }
  const members =
    values.cluster !== undefined ? parseCluster(values.cluster) : values.peers !== undefined ? parsePeers(values.peers) : null;
  const tls = tlsFiles(values);

  if (values["node-id"] === undefined) {
    for (const flag of ["bind", "client-bind", "data-dir", "join", "tls-cert", "tls-key", "tls-ca"] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --node-id (it configures a server)`);
    }
    if (members === null) throw new UsageError("give --node-id with --cluster or --peers to start a server, or --cluster alone for the client");
    if (values.verbose) throw new UsageError("--verbose applies to a server (give --node-id)");
    for (const m of members) {
      if (m.raft.port + CLIENT_PORT_OFFSET > 65535) throw new UsageError(`node ${m.id}: Raft port ${m.raft.port} + 1000 is not a port`);
    }
    return { kind: "client", members, timing };
  }

  const nodeId = values["node-id"];
  if (!/^[1-9][0-9]{0,8}$/.test(nodeId)) throw new UsageError(`--node-id must be a positive integer, got ${JSON.stringify(nodeId)}`);
  const join = values.join === undefined ? null : hostPort(values.join, "--join");
  if (members === null && join === null) {
    throw new UsageError("a server needs the initial members (--cluster or --peers), or --join to join a running cluster");
  }
  const self = members?.find((m) => m.id === nodeId);
  if (members !== null && self === undefined) {
    throw new UsageError(`--node-id ${nodeId} is not a member: the members are ${members.map((m) => m.id).join(", ")}`);
  }
  if (join !== null && values.bind === undefined) throw new UsageError("--join needs --bind HOST:PORT: the Raft address the cluster reaches this node at");
  if (values["data-dir"] === undefined || values["data-dir"] === "") throw new UsageError("a server needs --data-dir DIR");
  const bind = values.bind === undefined ? self!.raft : hostPort(values.bind, "--bind");
  if (join !== null && ["0.0.0.0", "::"].includes(bind.host)) {
    throw new UsageError(`with --join, --bind is this node's address in the cluster: give one the other members can dial, not ${formatHostPort(bind)}`);
  }
  let clientBind: HostPort;
  if (values["client-bind"] !== undefined) clientBind = hostPort(values["client-bind"], "--client-bind");
  else {
    const port = bind.port + CLIENT_PORT_OFFSET;
    if (port > 65535) throw new UsageError(`--bind port ${bind.port} + 1000 is not a port; give --client-bind`);
    clientBind = { host: bind.host, port };
  }
  if (clientBind.host === bind.host && clientBind.port === bind.port) throw new UsageError("--client-bind must differ from --bind");
  return {
    kind: "server",
    nodeId,
    bind,
    members: members ?? [],
    join,
    tls,
    clientBind,
    dataDir: values["data-dir"],
    timing,
    verbose: values.verbose === true,
  };
}

function tlsFiles(values: { "tls-cert"?: string; "tls-key"?: string; "tls-ca"?: string }): TlsFiles | null {
  const given = (["tls-cert", "tls-key", "tls-ca"] as const).filter((f) => values[f] !== undefined);
  if (given.length === 0) return null;
  if (given.length < 3) {
    const missing = (["tls-cert", "tls-key", "tls-ca"] as const).filter((f) => values[f] === undefined);
    throw new UsageError(`TLS needs all of --tls-cert, --tls-key and --tls-ca; missing ${missing.map((f) => `--${f}`).join(", ")}`);
  }
  for (const f of given) if (values[f] === "") throw new UsageError(`--${f} needs a file name`);
  return { certFile: values["tls-cert"]!, keyFile: values["tls-key"]!, caFile: values["tls-ca"]! };
}

function pickPreset(values: { "fast-mode"?: boolean; "debug-mode"?: boolean; "demo-mode"?: boolean }): TimingPreset {
  const chosen = (["fast", "debug", "demo"] as const).filter((name) => values[`${name}-mode`] === true);
  if (chosen.length > 1) throw new UsageError(`choose one timing preset, got ${chosen.map((n) => `--${n}-mode`).join(" and ")}`);
  return presets[chosen[0] ?? "fast"];
}

function hostPort(text: string, flag: string): HostPort {
  try {
    return parseHostPort(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}

function parseCluster(text: string): Member[] {
  const parts = text.split(",").map((s) => s.trim());
  if (parts.some((p) => p === "")) throw new UsageError(`--cluster must be a comma-separated list of HOST:PORT, got ${JSON.stringify(text)}`);
  const members = parts.map((p, i) => ({ id: String(i + 1), raft: hostPort(p, `--cluster address ${i + 1}`) }));
  checkDistinct(members, "--cluster");
  return members;
}

function parsePeers(text: string): Member[] {
  const members: Member[] = [];
  for (const part of text.split(",").map((s) => s.trim())) {
    const eq = part.indexOf("=");
    const id = part.slice(0, eq);
    if (eq <= 0 || !/^[1-9][0-9]{0,8}$/.test(id)) {
      throw new UsageError(`--peers entries are ID=HOST:PORT with a positive integer ID, got ${JSON.stringify(part)}`);
    }
    if (members.some((m) => m.id === id)) throw new UsageError(`--peers lists node ${id} twice`);
    members.push({ id, raft: hostPort(part.slice(eq + 1), `--peers ${id}`) });
  }
  members.sort((a, b) => Number(a.id) - Number(b.id));
  checkDistinct(members, "--peers");
  return members;
}

function checkDistinct(members: readonly Member[], flag: string): void {
  const seen = new Set<string>();
  for (const m of members) {
    const a = formatHostPort(m.raft);
    if (seen.has(a)) throw new UsageError(`${flag} lists ${a} twice`);
    seen.add(a);
  }
}

/** Where the HTTP API of `member` is expected: its Raft port + 1000 (the kvapp-c convention). */
export function clientAddressOf(member: Member): HostPort {
  return { host: member.raft.host, port: member.raft.port + CLIENT_PORT_OFFSET };
}

/** The same for a Raft address; null when port + 1000 is not a port. */
export function clientAddressOfRaft(raft: HostPort): HostPort | null {
  const port = raft.port + CLIENT_PORT_OFFSET;
  return port > 65535 ? null : { host: raft.host, port };
}
