/**
 * TcpTransport throughput and latency on loopback, next to raw node:net baselines run in
 * the same process, so that the ratio shows what framing, encoding, validation and
 * batching cost.
 *
 *   npx tsx bench/transport.bench.ts            (about 15 s)
 *   BENCH_SECONDS=5 npx tsx bench/transport.bench.ts
 *
 * Scenarios:
 * - raw ping-pong: 16-byte messages echoed over one socket (latency-bound).
 * - heartbeat ping-pong: Heartbeat → HeartbeatResponse between two transports.
 * - heartbeat stream: pipelined Heartbeats, acknowledged every 256 (throughput-bound).
 * - raw bulk stream: 64 KiB writes, as fast as the socket drains.
 * - 64 KiB AppendEntries stream: 16 × 4 KiB entries each, up to 32 unacknowledged.
 */
// Benchmarks import the public API; TcpTransport is not exported from src/index.ts yet.
import net from "node:net";
import type { Message } from "../src/core/messages.js";
import { TcpTransport } from "../src/transport/tcp-transport.js";
import { encodeMessage } from "../src/transport/wire-codec.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2.5);
const WARMUP_MS = 300;
const FRAME_HEADER = 6;

interface Result {
  name: string;
  messages: number;
  bytes: number;
  seconds: number;
}

const perSecond = (n: number, r: Result) => n / r.seconds;
const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0));

/** Runs `drive` for a warm-up, then measures the counters it advances for SECONDS. */
async function measure(name: string, drive: (counters: { messages: number; bytes: number }, stop: { now: boolean }) => Promise<void>): Promise<Result> {
  const counters = { messages: 0, bytes: 0 };
  const stop = { now: false };
  const done = drive(counters, stop);
  await sleep(WARMUP_MS);
  const m0 = counters.messages;
  const b0 = counters.bytes;
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const result = { name, messages: counters.messages - m0, bytes: counters.bytes - b0, seconds };
  stop.now = true;
  await done;
  return result;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function rawPair(): Promise<{ client: net.Socket; server: net.Server; accepted: Promise<net.Socket> }> {
  let accept!: (s: net.Socket) => void;
  const accepted = new Promise<net.Socket>((resolve) => (accept = resolve));
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    accept(s);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = net.connect({ host: "127.0.0.1", port: (server.address() as net.AddressInfo).port });
  client.setNoDelay(true);
  await new Promise((resolve) => client.once("connect", resolve));
  return { client, server, accepted };
}

async function closeRaw(pair: { client: net.Socket; server: net.Server }, peer: net.Socket): Promise<void> {
  pair.client.destroy();
  peer.destroy();
  await new Promise((resolve) => pair.server.close(resolve));
}

async function rawPingPong(): Promise<Result> {
  const pair = await rawPair();
  const peer = await pair.accepted;
  peer.on("data", (d) => peer.write(d));
  const ping = Buffer.alloc(16, 7);
  const result = await measure("raw ping-pong (16 B)", async (c, stop) => {
    let pending = 0;
    await new Promise<void>((resolve) => {
      pair.client.on("data", (d) => {
        pending += d.length;
        while (pending >= 16) {
          pending -= 16;
          c.messages += 2; // one each way
          c.bytes += 32;
          if (stop.now) return resolve();
          pair.client.write(ping);
        }
      });
      pair.client.write(ping);
    });
  });
  await closeRaw(pair, peer);
  return result;
}

async function rawBulk(): Promise<Result> {
  const pair = await rawPair();
  const peer = await pair.accepted;
  const chunk = Buffer.alloc(64 * 1024, 3);
  let received = 0;
  peer.on("data", (d) => (received += d.length));
  const result = await measure("raw bulk stream (64 KiB writes)", async (c, stop) => {
    const timer = setInterval(() => {
      c.bytes = received;
      c.messages = Math.floor(received / chunk.length);
    }, 5);
    await new Promise<void>((resolve) => {
      const pump = () => {
        while (!stop.now) if (!pair.client.write(chunk)) return void pair.client.once("drain", pump);
        resolve();
      };
      pump();
    });
    clearInterval(timer);
  });
  await closeRaw(pair, peer);
  return result;
}

async function transports(): Promise<{ a: TcpTransport; b: TcpTransport; onA: (h: (m: Message) => void) => void; onB: (h: (m: Message) => void) => void }> {
  let handlerA: (m: Message) => void = () => {};
  let handlerB: (m: Message) => void = () => {};
  const a = new TcpTransport({ id: "a", listen: "127.0.0.1:0", maxQueuedMessages: 1 << 16 });
  const b = new TcpTransport({ id: "b", listen: "127.0.0.1:0", maxQueuedMessages: 1 << 16 });
  await a.start((m) => handlerA(m));
  await b.start((m) => handlerB(m));
  a.setPeerAddresses(new Map([["b", `127.0.0.1:${b.port}`]]));
  b.setPeerAddresses(new Map([["a", `127.0.0.1:${a.port}`]]));
  return { a, b, onA: (h) => (handlerA = h), onB: (h) => (handlerB = h) };
}

async function heartbeatPingPong(): Promise<Result> {
  const { a, b, onA, onB } = await transports();
  const hb = (n: number): Message => ({ type: "Heartbeat", from: "a", to: "b", term: 5, commit: 1000 + n, readRound: n });
  const bytesPerRoundTrip =
    encodeMessage(hb(1)).length + encodeMessage({ type: "HeartbeatResponse", from: "b", to: "a", term: 5, readRound: 1 }).length + 2 * FRAME_HEADER;
  onB((m) => b.send({ type: "HeartbeatResponse", from: "b", to: "a", term: 5, readRound: (m as { readRound: number }).readRound }));
  const result = await measure("heartbeat ping-pong", async (c, stop) => {
    await new Promise<void>((resolve) => {
      let n = 0;
      onA(() => {
        c.messages += 2;
        c.bytes += bytesPerRoundTrip;
        if (stop.now) return resolve();
        a.send(hb(++n));
      });
      a.send(hb(++n));
    });
  });
  await Promise.all([a.stop(), b.stop()]);
  return result;
}

async function heartbeatStream(): Promise<Result> {
  const { a, b, onA, onB } = await transports();
  const hb = (n: number): Message => ({ type: "Heartbeat", from: "a", to: "b", term: 5, commit: 1000 + n, readRound: n });
  const frameBytes = encodeMessage(hb(100_000)).length + FRAME_HEADER;
  const ackEvery = 256;
  const window = 8192;
  let received = 0;
  onB(() => {
    received++;
    if (received % ackEvery === 0) b.send({ type: "HeartbeatResponse", from: "b", to: "a", term: 5, readRound: received });
  });
  const result = await measure("heartbeat stream (pipelined)", async (c, stop) => {
    let sent = 0;
    let acked = 0;
    await new Promise<void>((resolve) => {
      const pump = () => {
        if (stop.now) return resolve();
        // 1024 per turn: the transport turns each turn's sends into one socket write.
        for (let i = 0; i < 1024 && sent - acked < window; i++) a.send(hb(++sent));
        c.messages = received;
        c.bytes = received * frameBytes;
        if (sent - acked < window) setImmediate(pump);
      };
      onA((m) => {
        const wasBlocked = sent - acked >= window;
        acked = (m as { readRound: number }).readRound;
        if (wasBlocked) setImmediate(pump);
      });
      pump();
    });
  });
  await Promise.all([a.stop(), b.stop()]);
  return result;
}

async function appendStream(): Promise<Result> {
  const { a, b, onA, onB } = await transports();
  const data = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
  const append = (n: number): Message => ({
    type: "AppendEntries",
    from: "a",
    to: "b",
    term: 5,
    prevIndex: n * 16,
    prevTerm: 5,
    commit: n * 16,
    entries: Array.from({ length: 16 }, (_, i) => ({ index: n * 16 + i + 1, term: 5, type: "command" as const, data })),
  });
  const frameBytes = encodeMessage(append(1000)).length + FRAME_HEADER;
  let received = 0;
  onB((m) => {
    received++;
    const last = (m as { prevIndex: number }).prevIndex + 16;
    b.send({ type: "AppendEntriesResponse", from: "b", to: "a", term: 5, success: true, index: last, hintIndex: 0, hintTerm: 0 });
  });
  const result = await measure("64 KiB AppendEntries stream", async (c, stop) => {
    let sent = 0;
    let acked = 0;
    const window = 32;
    await new Promise<void>((resolve) => {
      const pump = () => {
        if (stop.now) return resolve();
        while (sent - acked < window) a.send(append(++sent));
      };
      onA(() => {
        acked++;
        c.messages = received;
        c.bytes = received * frameBytes;
        pump();
        if (stop.now) resolve();
      });
      pump();
    });
  });
  await Promise.all([a.stop(), b.stop()]);
  return result;
}

async function main(): Promise<void> {
  console.log(`transport bench: node ${process.version}, ${SECONDS} s per scenario, loopback 127.0.0.1\n`);
  const rawPP = await rawPingPong();
  const hbPP = await heartbeatPingPong();
  const hbStream = await heartbeatStream();
  const bulk = await rawBulk();
  const ae = await appendStream();
  const row = (r: Result, vs?: Result, vsName?: string) => {
    const ratio = vs ? `  ${((perSecond(r.messages, r) / perSecond(vs.messages, vs)) * 100).toFixed(0)}% of ${vsName} msg/s` : "";
    const mbRatio = vs && vsName === "raw bulk" ? `, ${((perSecond(r.bytes, r) / perSecond(vs.bytes, vs)) * 100).toFixed(0)}% of its MB/s` : "";
    console.log(
      `${r.name.padEnd(34)} ${fmt(perSecond(r.messages, r)).padStart(9)} msg/s ${(perSecond(r.bytes, r) / 1048576).toFixed(1).padStart(8)} MB/s${ratio}${mbRatio}`,
    );
  };
  row(rawPP);
  row(hbPP, rawPP, "raw ping-pong");
  row(hbStream, rawPP, "raw ping-pong");
  row(bulk);
  row(ae, bulk, "raw bulk");
  console.log("\nmsg/s counts messages in both directions for ping-pong; MB/s counts bytes on the wire (frames included).");
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
