import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Message } from "../src/core/messages.js";
import { RaftError } from "../src/errors.js";
import type { Logger } from "../src/logger.js";
import { FrameKind, encodeFrame } from "../src/transport/frame.js";
import { TcpTransport, type TcpTlsOptions, type TcpTransportOptions } from "../src/transport/tcp-transport.js";
import { encodeHandshake, encodeMessage } from "../src/transport/wire-codec.js";
import { freePort } from "../tools/ports.js";

// ---- helpers ----------------------------------------------------------------------------

const running: TcpTransport[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((t) => t.stop()));
});

function heartbeat(from: string, to: string, round: number): Message {
  return { type: "Heartbeat", from, to, term: 1, commit: round, readRound: round };
}

interface Recorder extends Logger {
  readonly warnings: string[];
}

function recorder(): Recorder {
  const warnings: string[] = [];
  const none = () => {};
  return { warnings, debug: none, info: none, error: (m) => warnings.push(m), warn: (m) => warnings.push(m) };
}

/** A started transport, stopped after the test. */
async function node(options: TcpTransportOptions, inbox: Message[] = []): Promise<{ t: TcpTransport; inbox: Message[]; addr: string }> {
  const t = new TcpTransport(options);
  running.push(t);
  await t.start((m) => inbox.push(m));
  return { t, inbox, addr: `127.0.0.1:${t.port}` };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Opens a raw connection, writes `chunks`, and reports whether the other side closed it. */
async function rawSession(port: number, chunks: Uint8Array[], waitMs = 2000): Promise<{ closedByPeer: boolean }> {
  const socket = net.connect({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  await new Promise((resolve) => socket.once("connect", resolve));
  for (const c of chunks) socket.write(c);
  const closed = await Promise.race([
    new Promise<boolean>((resolve) => socket.once("close", () => resolve(true))),
    sleep(waitMs).then(() => false),
  ]);
  socket.destroy();
  return { closedByPeer: closed };
}

const handshakeFrame = (clusterId: string, nodeId: string) => encodeFrame(FrameKind.Handshake, encodeHandshake({ clusterId, nodeId }));
const messageFrame = (m: Message) => encodeFrame(FrameKind.Message, encodeMessage(m));

// ---- options ------------------------------------------------------------------------------

describe("TcpTransport options", () => {
  const ok: TcpTransportOptions = { id: "a", listen: "127.0.0.1:0" };
  const cases: [string, Partial<Record<keyof TcpTransportOptions, unknown>>, ErrorConstructor, RegExp][] = [
    ["id", { id: "" }, TypeError, /TcpTransportOptions\.id/],
    ["id", { id: "x".repeat(256) }, RangeError, /TcpTransportOptions\.id/],
    ["id", { id: "a\uDC00" }, RangeError, /TcpTransportOptions\.id contains a lone surrogate/],
    ["listen", { listen: "localhost" }, TypeError, /TcpTransportOptions\.listen/],
    ["listen", { listen: "::1:80" }, TypeError, /IPv6 host in brackets/],
    ["listen", { listen: "127.0.0.1:70000" }, RangeError, /TcpTransportOptions\.listen/],
    ["peers", { peers: { b: "127.0.0.1:0" } }, RangeError, /peers\["b"\]: port must be 1 to 65535/],
    ["peers", { peers: { b: 5 } }, TypeError, /peers\["b"\]/],
    ["peers", { peers: "b" }, TypeError, /TcpTransportOptions\.peers/],
    ["clusterId", { clusterId: "" }, TypeError, /clusterId/],
    ["tls", { tls: { key: "k", cert: "c" } }, TypeError, /tls\.ca/],
    ["maxFrameBytes", { maxFrameBytes: 10 }, RangeError, /maxFrameBytes/],
    ["maxQueuedMessages", { maxQueuedMessages: 0 }, RangeError, /maxQueuedMessages/],
    ["maxQueuedMessages", { maxQueuedMessages: 1.5 }, TypeError, /maxQueuedMessages/],
    ["connectTimeoutMs", { connectTimeoutMs: -1 }, RangeError, /connectTimeoutMs/],
    ["reconnectMaxMs", { reconnectMinMs: 500, reconnectMaxMs: 100 }, RangeError, /reconnectMaxMs \(100\) must be at least reconnectMinMs \(500\)/],
    ["random", { random: 4 }, TypeError, /random/],
    ["logger", { logger: {} }, TypeError, /logger/],
  ];
  for (const [name, patch, type, pattern] of cases) {
    it(`validates ${name}: ${JSON.stringify(patch)}`, () => {
      const create = () => new TcpTransport({ ...ok, ...patch } as TcpTransportOptions);
      expect(create).toThrow(type);
      expect(create).toThrow(pattern);
    });
  }

  it("accepts IPv6 addresses in brackets, and the cluster map including itself", () => {
    expect(() => new TcpTransport({ id: "a", listen: "[::1]:0", peers: new Map([["a", "[::1]:7000"], ["b", "[::1]:7001"]]) })).not.toThrow();
  });
});

// ---- lifecycle --------------------------------------------------------------------------

describe("TcpTransport lifecycle", () => {
  it("listens on port 0 and reports the chosen port; a second start is refused", async () => {
    const { t } = await node({ id: "a", listen: "127.0.0.1:0" });
    expect(t.port).toBeGreaterThan(0);
    expect(t.address()).toEqual({ host: "127.0.0.1", port: t.port });
    await expect(t.start(() => {})).rejects.toMatchObject({ code: "INVALID_STATE" });
  });

  it("rejects start with TRANSPORT when the address is taken", async () => {
    const { t } = await node({ id: "a", listen: "127.0.0.1:0" });
    const clash = new TcpTransport({ id: "b", listen: `127.0.0.1:${t.port}` });
    await expect(clash.start(() => {})).rejects.toMatchObject({ code: "TRANSPORT" });
    await clash.stop();
  });

  it("address() throws INVALID_STATE when not listening", () => {
    const t = new TcpTransport({ id: "a", listen: "127.0.0.1:0" });
    expect(() => t.address()).toThrow(RaftError);
  });

  it("can start again after stop", async () => {
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: {} });
    const inbox: Message[] = [];
    const a = await node({ id: "a", listen: "127.0.0.1:0", peers: { b: b.addr } });
    b.t.setPeerAddresses(new Map([["a", a.addr]]));
    await a.t.stop();
    await a.t.start((m) => inbox.push(m));
    a.t.send(heartbeat("a", "b", 1));
    await waitFor(() => b.inbox.length === 1, "delivery after restart of the sender");
  });

  it("stop() releases every socket, server and timer", async () => {
    const kinds = ["TCPServerWrap", "TCPSocketWrap", "TCPWRAP", "Timeout", "Immediate", "TLSWrap"];
    const count = () => process.getActiveResourcesInfo().filter((r) => kinds.includes(r)).length;
    await sleep(20);
    const before = count();
    const dead = await freePort();
    const b = await node({ id: "b", listen: "127.0.0.1:0", handshakeTimeoutMs: 60_000 });
    const a = await node({ id: "a", listen: "127.0.0.1:0", peers: { b: b.addr, c: `127.0.0.1:${dead}` }, reconnectMinMs: 5_000, reconnectMaxMs: 60_000 });
    b.t.setPeerAddresses(new Map([["a", a.addr]]));
    a.t.send(heartbeat("a", "b", 1));
    a.t.send(heartbeat("a", "c", 1)); // refused, so a backoff timer is pending
    await waitFor(() => b.inbox.length === 1, "delivery");
    const idle = net.connect({ host: "127.0.0.1", port: b.t.port }); // an unauthenticated connection, pending its handshake
    idle.on("error", () => {});
    await waitFor(() => b.t.stats().inboundConnections === 2, "the idle connection");
    await sleep(50);
    expect(count()).toBeGreaterThan(before);
    await Promise.all([a.t.stop(), b.t.stop()]);
    idle.destroy();
    // Handles leave the list a moment after their close events; none may outlive that.
    await waitFor(() => count() <= before, `resources back to ${before}: ${process.getActiveResourcesInfo().join(", ")}`, 1000);
  });
});

// ---- handshake and identity ---------------------------------------------------------------

describe("TcpTransport handshake", () => {
  it("refuses a connection from another cluster, logging once per reason and peer", async () => {
    const log = recorder();
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" }, clusterId: "blue", logger: log });
    for (let i = 0; i < 3; i++) {
      const r = await rawSession(b.t.port, [handshakeFrame("green", "a"), messageFrame(heartbeat("a", "b", 1))]);
      expect(r.closedByPeer).toBe(true);
    }
    expect(b.inbox).toEqual([]);
    expect(log.warnings.filter((w) => w.includes("another cluster"))).toHaveLength(1);
    expect(b.t.stats().connectionsRefused).toBe(3);
  });

  it("refuses a node id that is not a member, until setPeerAddresses admits it", async () => {
    const log = recorder();
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" }, logger: log });
    const r = await rawSession(b.t.port, [handshakeFrame("default", "z"), messageFrame(heartbeat("z", "b", 1))]);
    expect(r.closedByPeer).toBe(true);
    expect(log.warnings.some((w) => w.includes("not a member"))).toBe(true);
    expect(b.inbox).toEqual([]);

    b.t.setPeerAddresses(new Map([["z", "127.0.0.1:1"]]));
    const z = net.connect({ host: "127.0.0.1", port: b.t.port });
    z.on("error", () => {});
    z.write(handshakeFrame("default", "z"));
    z.write(messageFrame(heartbeat("z", "b", 2)));
    await waitFor(() => b.inbox.length === 1, "delivery from the admitted member");
    expect(b.inbox[0]).toEqual(heartbeat("z", "b", 2));

    // Removing it again closes its live connection.
    const closed = new Promise((resolve) => z.once("close", resolve));
    b.t.setPeerAddresses(new Map([["a", "127.0.0.1:1"]]));
    await closed;
  });

  it("closes a connection whose message `from` differs from the handshake id (spoofing)", async () => {
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1", c: "127.0.0.1:1" } });
    const r = await rawSession(b.t.port, [
      handshakeFrame("default", "a"),
      messageFrame(heartbeat("a", "b", 1)),
      messageFrame(heartbeat("c", "b", 2)),
      messageFrame(heartbeat("a", "b", 3)),
    ]);
    expect(r.closedByPeer).toBe(true);
    expect(b.inbox.map((m) => m.from)).toEqual(["a"]); // nothing after the spoofed message
  });

  it("closes a connection carrying a message addressed to another node", async () => {
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" } });
    const r = await rawSession(b.t.port, [handshakeFrame("default", "a"), messageFrame(heartbeat("a", "c", 1))]);
    expect(r.closedByPeer).toBe(true);
    expect(b.inbox).toEqual([]);
  });

  it("closes a connection that sends a message before its handshake, or nothing at all", async () => {
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" }, handshakeTimeoutMs: 100 });
    expect((await rawSession(b.t.port, [messageFrame(heartbeat("a", "b", 1))])).closedByPeer).toBe(true);
    expect((await rawSession(b.t.port, [])).closedByPeer).toBe(true);
    expect(b.inbox).toEqual([]);
  });

  it("closes on malformed input and keeps serving other connections", async () => {
    const log = recorder();
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" }, logger: log, maxFrameBytes: 4096 });
    const a = await node({ id: "a", listen: "127.0.0.1:0", peers: { b: b.addr } });
    a.t.send(heartbeat("a", "b", 1));
    await waitFor(() => b.inbox.length === 1, "first delivery");
    const bad: Uint8Array[][] = [
      [Uint8Array.of(0xff, 0xff, 0xff, 0xff)], // huge length prefix, refused before any payload
      [Uint8Array.of(0, 0, 3, 0, 1, 1)], // larger than the pre-handshake bound
      [handshakeFrame("default", "a"), Uint8Array.of(0, 0, 0x20, 0, 1, 2)], // above maxFrameBytes
      [handshakeFrame("default", "a"), Uint8Array.of(0, 0, 0, 3, 1, 2, 0xee)], // an invalid message
      [handshakeFrame("default", "a"), Uint8Array.of(0, 0, 0, 3, 9, 2, 0xee)], // an unknown protocol version
      [handshakeFrame("default", "a"), handshakeFrame("default", "a")], // a second handshake
      [new TextEncoder().encode("GET / HTTP/1.1\r\nHost: b\r\n\r\n")],
    ];
    for (const [i, chunks] of bad.entries()) expect([i, (await rawSession(b.t.port, chunks)).closedByPeer]).toEqual([i, true]);
    expect(log.warnings.some((w) => w.includes("malformed input"))).toBe(true);
    a.t.send(heartbeat("a", "b", 2));
    await waitFor(() => b.inbox.length === 2, "delivery after the bad connections");
    expect(b.t.stats().inboundConnections).toBe(1);
  });
});

// ---- sending ------------------------------------------------------------------------------

describe("TcpTransport sending", () => {
  it("bounds the queue of an unreachable peer and counts the drops", async () => {
    const log = recorder();
    const { t } = await node({
      id: "a",
      listen: "127.0.0.1:0",
      peers: { b: `127.0.0.1:${await freePort()}` },
      maxQueuedMessages: 10,
      logger: log,
    });
    for (let i = 0; i < 25; i++) t.send(heartbeat("a", "b", i));
    expect(t.stats().messagesDropped).toBe(15);
    expect(log.warnings.filter((w) => w.includes("queue full"))).toHaveLength(1);
  });

  it("never throws from send: unknown peer, foreign sender, invalid or oversized message, not started", async () => {
    const idle = new TcpTransport({ id: "a", listen: "127.0.0.1:0" });
    expect(() => idle.send(heartbeat("a", "b", 1))).not.toThrow();

    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" } });
    const a = await node({ id: "a", listen: "127.0.0.1:0", peers: { b: b.addr }, maxFrameBytes: 2048 });
    const bad = [
      heartbeat("a", "nobody", 1),
      heartbeat("x", "b", 1),
      { ...heartbeat("a", "b", 1), commit: -1 },
      { type: "InstallSnapshot", from: "a", to: "b", term: 1, meta: { index: 1, term: 1, config: { voters: [], learners: [], outgoingVoters: [] } }, offset: 0, data: new Uint8Array(4096), done: true },
      null,
    ] as unknown as Message[];
    for (const m of bad) expect(() => a.t.send(m)).not.toThrow();
    a.t.send(heartbeat("a", "b", 7));
    await waitFor(() => b.inbox.length === 1, "the valid message");
    expect(b.inbox[0]).toEqual(heartbeat("a", "b", 7));
    expect(a.t.stats().messagesDropped).toBe(bad.length);
  });

  it("coalesces the messages of one turn into one socket write, in order", async () => {
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" } });
    const a = await node({ id: "a", listen: "127.0.0.1:0", peers: { b: b.addr } });
    a.t.send(heartbeat("a", "b", 0));
    await waitFor(() => b.inbox.length === 1, "connection set up");
    const before = a.t.stats().batchesWritten;
    for (let i = 1; i <= 200; i++) a.t.send(heartbeat("a", "b", i));
    await Promise.resolve().then(() => {
      for (let i = 201; i <= 300; i++) a.t.send(heartbeat("a", "b", i)); // a later microtask of the same turn
    });
    await waitFor(() => b.inbox.length === 301, "300 messages");
    expect(a.t.stats().batchesWritten - before).toBe(1);
    expect(b.inbox.map((m) => (m as { commit: number }).commit)).toEqual(Array.from({ length: 301 }, (_, i) => i));
  });

  it("splits a large backlog into bounded writes, keeping order", async () => {
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" } });
    const a = await node({ id: "a", listen: "127.0.0.1:0", peers: { b: b.addr } });
    const data = new Uint8Array(64 * 1024).fill(9);
    const count = 40; // 2.5 MiB in one turn: more than one write batch
    for (let i = 1; i <= count; i++) {
      a.t.send({ type: "AppendEntries", from: "a", to: "b", term: 1, prevIndex: i, prevTerm: 1, commit: i, entries: [{ index: i + 1, term: 1, type: "command", data }] });
    }
    await waitFor(() => b.inbox.length === count, `${count} large messages`);
    expect(b.inbox.map((m) => (m as { commit: number }).commit)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    expect(a.t.stats().batchesWritten).toBeGreaterThan(1);
  });

  it("reconnects with backoff after the listener restarts on the same port", async () => {
    const b1 = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" } });
    const port = b1.t.port;
    const draws: number[] = [];
    const a = await node({
      id: "a",
      listen: "127.0.0.1:0",
      peers: { b: `127.0.0.1:${port}` },
      reconnectMinMs: 20,
      reconnectMaxMs: 200,
      random: () => {
        draws.push(0.5);
        return 0.5;
      },
    });
    a.t.send(heartbeat("a", "b", 1));
    await waitFor(() => b1.inbox.length === 1, "delivery before the restart");
    await b1.t.stop();
    await waitFor(() => a.t.stats().outboundConnections === 0, "the sender to notice");
    for (let i = 0; i < 5; i++) {
      a.t.send(heartbeat("a", "b", 2)); // queued while b is down; refused attempts back off
      await sleep(30);
    }
    const b2 = await node({ id: "b", listen: `127.0.0.1:${port}`, peers: { a: "127.0.0.1:1" } });
    let round = 3;
    await waitFor(() => {
      a.t.send(heartbeat("a", "b", round++));
      return b2.inbox.length > 0;
    }, "delivery after the restart");
    expect(b2.inbox[0]!.from).toBe("a");
    expect(draws.length).toBeGreaterThan(1); // the injected random source drives the jitter
  });
});

// ---- TLS ------------------------------------------------------------------------------------

const openssl = (() => {
  try {
    return execFileSync("which", ["openssl"], { encoding: "utf8" }).trim();
  } catch {
    return "";
  }
})();
if (openssl === "") console.warn("tcp-transport.test: openssl not found on PATH, skipping the TLS tests");

describe.skipIf(openssl === "")("TcpTransport with mutual TLS", () => {
  let dir = "";
  const material = new Map<string, TcpTlsOptions>();

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "raftkit-tls-"));
    const run = (...args: string[]) => execFileSync(openssl, args, { cwd: dir, stdio: "pipe" });
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
    for (const ca of ["ca", "rogue-ca"]) run("req", "-x509", ...ec, "-keyout", `${ca}.key`, "-out", `${ca}.crt`, "-days", "2", "-subj", `/CN=${ca}`);
    const issue = (name: string, ca: string) => {
      run("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
      run("x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-set_serial", "1", "-days", "2", "-out", `${name}.crt`, "-extfile", "ext.cnf");
      const read = (f: string) => readFileSync(join(dir, f), "utf8");
      material.set(name, { key: read(`${name}.key`), cert: read(`${name}.crt`), ca: read("ca.crt") });
    };
    issue("a", "ca");
    issue("b", "ca");
    issue("mallory", "rogue-ca");
  });

  afterAll(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  it("delivers both ways between members with certificates from the cluster CA", async () => {
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" }, tls: material.get("b")! });
    const a = await node({ id: "a", listen: "127.0.0.1:0", peers: { b: b.addr }, tls: material.get("a")! });
    b.t.setPeerAddresses(new Map([["a", a.addr]]));
    a.t.send(heartbeat("a", "b", 1));
    b.t.send(heartbeat("b", "a", 2));
    await waitFor(() => a.inbox.length === 1 && b.inbox.length === 1, "TLS delivery both ways");
    expect(b.inbox[0]).toEqual(heartbeat("a", "b", 1));
  });

  it("refuses a client whose certificate is not signed by the CA, even with a member id", async () => {
    const log = recorder();
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" }, tls: material.get("b")!, logger: log });
    // Mallory trusts the real CA (so it accepts b's certificate) but holds a rogue certificate.
    const mallory = await node({ id: "a", listen: "127.0.0.1:0", peers: { b: b.addr }, tls: material.get("mallory")! });
    for (let i = 0; i < 5; i++) {
      mallory.t.send(heartbeat("a", "b", i));
      await sleep(20);
    }
    await waitFor(() => b.t.stats().connectionsRefused > 0, "the TLS refusal");
    expect(b.inbox).toEqual([]);
    expect(log.warnings.some((w) => w.includes("TLS handshake failed"))).toBe(true);
  });

  it("refuses a TLS client without a certificate, and a plain TCP client", async () => {
    const b = await node({ id: "b", listen: "127.0.0.1:0", peers: { a: "127.0.0.1:1" }, tls: material.get("b")! });
    const noCert = tls.connect({ host: "127.0.0.1", port: b.t.port, ca: material.get("a")!.ca as string });
    noCert.on("error", () => {});
    noCert.on("secureConnect", () => {
      noCert.write(handshakeFrame("default", "a"));
      noCert.write(messageFrame(heartbeat("a", "b", 1)));
    });
    await new Promise((resolve) => noCert.once("close", resolve));
    expect((await rawSession(b.t.port, [handshakeFrame("default", "a"), messageFrame(heartbeat("a", "b", 1))])).closedByPeer).toBe(true);
    expect(b.inbox).toEqual([]);
  });
});
