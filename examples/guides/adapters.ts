// The example of docs/adapters.md: a storage adapter and a transport adapter written
// against raftkit's public interfaces. Both pass the conformance suites of raftkit/testing
// (test/guide-adapters.test.ts runs them). They favour clarity over speed.
import { mkdir, open, readFile, rename } from "node:fs/promises";
import http from "node:http";
import { join } from "node:path";
import {
  RaftError,
  collectChunks,
  decodeMessage,
  encodeMessage,
  snapshotBytes,
  snapshotDataOf,
  type Entry,
  type HardState,
  type Message,
  type MessageHandler,
  type NodeId,
  type RaftStorage,
  type Snapshot,
  type SnapshotMeta,
  type StorageBatch,
  type StorageCapabilities,
  type StoredState,
  type Transport,
} from "raftkit";

// ================================================================ storage

/** The whole stored state, as it sits in memory between writes. */
interface Image {
  hardState: HardState;
  firstIndex: number;
  compactedTerm: number;
  entries: Entry[];
  /** The snapshot's bytes live in the JSON file too: fine for a small state only. */
  snapshot: StoredSnapshot | null;
}

interface StoredSnapshot {
  meta: SnapshotMeta;
  bytes: Uint8Array;
}

const emptyImage = (): Image => ({ hardState: { term: 0, vote: null, commit: 0 }, firstIndex: 1, compactedTerm: 0, entries: [], snapshot: null });

/**
 * A durable {@link RaftStorage} that keeps everything in one JSON file and rewrites it on
 * every write: write a temporary file, fsync it, rename it over the old one, fsync the
 * directory. The rename makes each write atomic. Simple and obviously correct, and far
 * too slow for a long log: a real adapter appends (see LevelStorage).
 */
export class JsonFileStorage implements RaftStorage {
  readonly capabilities: StorageCapabilities = { durable: true };
  private image: Image = emptyImage();
  private isOpen = false;
  /** Every write runs after the previous one: calls are applied in call order. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly dir: string) {}

  async load(): Promise<StoredState> {
    await mkdir(this.dir, { recursive: true });
    try {
      this.image = fromJson(await readFile(join(this.dir, "raft.json"), "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new RaftError("CORRUPT", "raft.json is unreadable", { cause: err });
      this.image = emptyImage(); // a new store
    }
    this.isOpen = true;
    const { hardState, firstIndex, compactedTerm, entries, snapshot } = this.image;
    return { hardState, firstIndex, compactedTerm, entries: [...entries], snapshot: snapshot && { meta: snapshot.meta, data: snapshotDataOf(snapshot.bytes) } };
  }

  /** Collects the bytes; they become durable with the compact or save that names them. */
  async writeSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<Snapshot> {
    if (!this.isOpen) throw new RaftError("STOPPED", "JsonFileStorage is closed");
    return { meta, data: snapshotDataOf(await collectChunks(chunks)) };
  }

  save(batch: StorageBatch): Promise<void> {
    return this.write(async (image) => {
      const installed = batch.snapshot && { meta: batch.snapshot.meta, bytes: await snapshotBytes(batch.snapshot.data) };
      if (installed) {
        // An installed snapshot replaces the whole log; the batch's entries follow it.
        image.snapshot = installed;
        image.entries = [];
        image.firstIndex = installed.meta.index + 1;
        image.compactedTerm = installed.meta.term;
      }
      const entries = batch.entries ?? [];
      if (entries.length > 0) {
        const first = entries[0]!.index;
        const next = image.firstIndex + image.entries.length;
        if (first < image.firstIndex || first > next) throw new RaftError("STORAGE", `append at ${first} leaves a gap or rewrites compacted entries`);
        entries.forEach((e, i) => {
          if (e.index !== first + i) throw new RaftError("STORAGE", "entries are not contiguous");
        });
        image.entries = [...image.entries.slice(0, first - image.firstIndex), ...entries]; // truncate, then append
      }
      if (batch.hardState) image.hardState = batch.hardState;
    });
  }

  compact(snapshot: Snapshot, compactTo: number, compactToTerm: number): Promise<void> {
    return this.write(async (image) => {
      const last = image.firstIndex + image.entries.length - 1;
      if (compactTo > snapshot.meta.index) throw new RaftError("STORAGE", "compactTo is past the snapshot");
      if (snapshot.meta.index > last) throw new RaftError("STORAGE", "the snapshot is past the last entry");
      if (snapshot.meta.index < image.firstIndex - 1) throw new RaftError("STORAGE", "the snapshot is older than the compacted log");
      image.snapshot = { meta: snapshot.meta, bytes: await snapshotBytes(snapshot.data) };
      if (compactTo >= image.firstIndex) {
        image.entries = image.entries.slice(compactTo - image.firstIndex + 1);
        image.firstIndex = compactTo + 1;
        image.compactedTerm = compactToTerm;
      }
    });
  }

  async close(): Promise<void> {
    this.isOpen = false;
    await this.queue; // writes accepted before close() still complete
  }

  /**
   * Applies `change` to a copy of the image and makes the copy durable. A change that
   * throws (a refused batch) writes nothing. Rejects with STOPPED once closed.
   */
  private write(change: (image: Image) => void | Promise<void>): Promise<void> {
    if (!this.isOpen) return Promise.reject(new RaftError("STOPPED", "JsonFileStorage is closed"));
    const done = this.queue.then(async () => {
      const next: Image = { ...this.image, entries: [...this.image.entries] };
      await change(next);
      await this.persist(next);
      this.image = next;
    });
    this.queue = done.catch(() => {}); // a failed write does not block the next one
    return done;
  }

  private async persist(image: Image): Promise<void> {
    const tmp = join(this.dir, "raft.json.tmp");
    const file = await open(tmp, "w");
    try {
      await file.writeFile(toJson(image));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, join(this.dir, "raft.json"));
    const dir = await open(this.dir, "r"); // make the rename itself durable
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64");
const unb64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "base64"));

function toJson(image: Image): string {
  return JSON.stringify({
    ...image,
    entries: image.entries.map((e) => ({ ...e, data: b64(e.data) })),
    snapshot: image.snapshot && { meta: image.snapshot.meta, data: b64(image.snapshot.bytes) },
  });
}

function fromJson(text: string): Image {
  const raw = JSON.parse(text) as Omit<Image, "entries" | "snapshot"> & {
    entries: (Omit<Entry, "data"> & { data: string })[];
    snapshot: { meta: SnapshotMeta; data: string } | null;
  };
  return {
    ...raw,
    entries: raw.entries.map((e) => ({ ...e, data: unb64(e.data) })),
    snapshot: raw.snapshot && { meta: raw.snapshot.meta, bytes: unb64(raw.snapshot.data) },
  };
}

// ================================================================ transport

/** Options of {@link HttpTransport}. */
export interface HttpTransportOptions {
  readonly id: NodeId;
  /** Where this node's HTTP server listens. */
  readonly host: string;
  readonly port: number;
  /** Every other member's base URL, e.g. `http://10.0.0.2:7001`. */
  readonly peers: ReadonlyMap<NodeId, string>;
}

/** The most messages queued per peer; beyond it, messages are dropped (Raft resends what matters). */
const MAX_QUEUE = 10_000;
/** The largest request body accepted. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

/**
 * A {@link Transport} over HTTP/1.1: each node runs a server that takes `POST /raft` with
 * a batch of encoded messages, and sends to each peer one batch at a time, which keeps
 * that peer's messages in order. Delivery is best effort: a failed POST drops its batch.
 */
export class HttpTransport implements Transport {
  private server: http.Server | null = null;
  private handler: MessageHandler | null = null;
  private peers: ReadonlyMap<NodeId, string>;
  private readonly queues = new Map<NodeId, Message[]>();
  private readonly sending = new Set<NodeId>();
  private readonly inflight = new Set<AbortController>();

  constructor(private readonly options: HttpTransportOptions) {
    this.peers = options.peers;
  }

  async start(handler: MessageHandler): Promise<void> {
    const server = http.createServer((req, res) => this.receive(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host, () => resolve());
    }).catch((err: unknown) => {
      throw new RaftError("TRANSPORT", `cannot listen on ${this.options.host}:${this.options.port}`, { cause: err });
    });
    this.server = server;
    this.handler = handler;
  }

  send(message: Message): void {
    // Never throws: a message that cannot be sent is dropped.
    if (this.handler === null || !this.peers.has(message.to)) return;
    let queue = this.queues.get(message.to);
    if (queue === undefined) this.queues.set(message.to, (queue = []));
    if (queue.length >= MAX_QUEUE) return;
    queue.push(message);
    if (!this.sending.has(message.to)) void this.pump(message.to);
  }

  setPeerAddresses(addresses: ReadonlyMap<NodeId, string>): void {
    // The node passes "host:port" from the configuration's addresses.
    this.peers = new Map([...addresses].map(([id, address]) => [id, `http://${address}`]));
  }

  async stop(): Promise<void> {
    this.handler = null;
    this.queues.clear();
    for (const request of this.inflight) request.abort();
    const server = this.server;
    this.server = null;
    if (server === null) return;
    server.closeAllConnections(); // keep-alive connections would hold close() open
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Sends `to`'s queue, one POST at a time, until it is empty. */
  private async pump(to: NodeId): Promise<void> {
    this.sending.add(to);
    try {
      for (;;) {
        const batch = this.queues.get(to)?.splice(0) ?? [];
        const url = this.peers.get(to);
        if (batch.length === 0 || url === undefined || this.handler === null) return;
        const request = new AbortController();
        this.inflight.add(request);
        const timer = setTimeout(() => request.abort(), 2000);
        try {
          const body = encodeBatch(batch);
          await fetch(`${url}/raft`, { method: "POST", body, signal: request.signal }).then((res) => res.arrayBuffer());
        } catch {
          // Peer down, timed out or stopped: the batch is lost, as Raft allows.
        } finally {
          clearTimeout(timer);
          this.inflight.delete(request);
        }
      }
    } finally {
      this.sending.delete(to);
    }
  }

  private receive(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method !== "POST" || req.url !== "/raft") {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) req.destroy(); // untrusted input: bound it
      else chunks.push(chunk);
    });
    req.on("end", () => {
      let messages: Message[];
      try {
        messages = decodeBatch(new Uint8Array(Buffer.concat(chunks)));
      } catch {
        res.writeHead(400).end(); // malformed: refuse the whole batch
        return;
      }
      res.writeHead(204).end();
      for (const m of messages) if (m.to === this.options.id) this.handler?.(m);
    });
  }
}

/** A batch on the wire: for each message, a 4-byte big-endian length and its encoding. */
function encodeBatch(messages: readonly Message[]): Uint8Array {
  const encoded = messages.map((m) => encodeMessage(m));
  const out = new Uint8Array(encoded.reduce((n, e) => n + 4 + e.length, 0));
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const e of encoded) {
    view.setUint32(offset, e.length);
    out.set(e, offset + 4);
    offset += 4 + e.length;
  }
  return out;
}

function decodeBatch(bytes: Uint8Array): Message[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const messages: Message[] = [];
  for (let offset = 0; offset < bytes.length; ) {
    if (offset + 4 > bytes.length) throw new RaftError("CORRUPT", "truncated batch");
    const length = view.getUint32(offset);
    if (offset + 4 + length > bytes.length) throw new RaftError("CORRUPT", "truncated batch");
    messages.push(decodeMessage(bytes.subarray(offset + 4, offset + 4 + length))); // validates every field
    offset += 4 + length;
  }
  return messages;
}
