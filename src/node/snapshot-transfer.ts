import type { Message, NodeId, Snapshot, SnapshotMeta } from "../core/messages.js";
import type { IncomingSnapshotChunk, OutgoingSnapshotChunk } from "../core/ready.js";
import type { RaftStorage } from "../storage/storage.js";

/**
 * A one-reader stream fed by pushes: the chunks of a snapshot arriving from the leader,
 * read by `RaftStorage.writeSnapshot` as they come. `push` resolves once the reader asked
 * for the next chunk (so the previous one is written): that paces the transfer to the
 * disk, because the follower acknowledges a chunk only after its push resolved.
 */
class ChunkChannel implements AsyncIterable<Uint8Array> {
  /** Chunks not yet taken, each with the release of its pusher. */
  private readonly queue: { chunk: Uint8Array; release: () => void }[] = [];
  /** Pushers whose chunks were taken: released when the reader asks for more. */
  private taken: (() => void)[] = [];
  private ended = false;
  private failure: Error | null = null;
  /** The reader waiting for a chunk. */
  private waiting: { resolve: (r: IteratorResult<Uint8Array>) => void; reject: (err: Error) => void } | null = null;

  push(chunk: Uint8Array): Promise<void> {
    if (this.ended || this.failure !== null) return Promise.resolve();
    return new Promise((release) => {
      this.queue.push({ chunk, release });
      this.serve();
    });
  }

  end(): void {
    this.ended = true;
    this.serve();
  }

  /** Abandons the stream: the reader's next read throws `err`; pushers are released. */
  fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.reject(err);
    this.releaseAll();
  }

  /** The reader is done (finished or failed on its own): nobody waits on it any more. */
  releaseAll(): void {
    for (const release of this.taken.splice(0)) release();
    for (const item of this.queue.splice(0)) item.release();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () => {
        // Asking for more means the chunks taken so far are written.
        for (const release of this.taken.splice(0)) release();
        if (this.failure !== null) return Promise.reject(this.failure);
        return new Promise((resolve, reject) => {
          this.waiting = { resolve, reject };
          this.serve();
        });
      },
      return: () => {
        this.fail(new Error("the snapshot reader stopped"));
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private serve(): void {
    const waiting = this.waiting;
    if (waiting === null) return;
    const item = this.queue.shift();
    if (item !== undefined) {
      this.waiting = null;
      this.taken.push(item.release);
      waiting.resolve({ value: item.chunk, done: false });
    } else if (this.ended) {
      this.waiting = null;
      waiting.resolve({ value: undefined, done: true });
    }
  }
}

/** Thrown into the chunk stream of a transfer that will not complete. */
class TransferAbandoned extends Error {
  constructor() {
    super("the snapshot transfer was abandoned");
    this.name = "TransferAbandoned";
  }
}

/**
 * The follower's side of a snapshot transfer: writes the chunks that the core accepted
 * to storage as they arrive, so that the snapshot is never assembled in memory.
 */
export class SnapshotReceiver {
  private current: { meta: SnapshotMeta; channel: ChunkChannel; written: Promise<Snapshot> } | null = null;

  constructor(private readonly storage: RaftStorage) {}

  /**
   * Hands one chunk to storage. A chunk at offset 0 starts a new transfer and abandons an
   * unfinished one. Resolves once storage has taken the chunk.
   */
  accept(chunk: IncomingSnapshotChunk): Promise<void> {
    if (chunk.offset === 0) this.start(chunk.meta);
    const current = this.current;
    // The core passes on only contiguous chunks of the transfer it started with offset 0.
    if (current === null || current.meta.index !== chunk.meta.index || current.meta.term !== chunk.meta.term) {
      throw new Error(`snapshot chunk at ${chunk.offset} for ${chunk.meta.index} without its transfer`);
    }
    const pushed = chunk.data.byteLength > 0 ? current.channel.push(chunk.data) : Promise.resolve();
    if (chunk.done) current.channel.end();
    return pushed;
  }

  /**
   * The stored snapshot once the transfer of `meta` has been written in full. Rejects
   * with the storage's error when the write failed.
   */
  finish(meta: SnapshotMeta): Promise<Snapshot> {
    const current = this.current;
    if (current === null || current.meta.index !== meta.index || current.meta.term !== meta.term) {
      return Promise.reject(new Error(`no snapshot transfer for ${meta.index} to finish`));
    }
    this.current = null;
    return current.written;
  }

  /** Abandons an unfinished transfer (the node stops): storage discards what it wrote. */
  abandon(): void {
    this.current?.channel.fail(new TransferAbandoned());
    this.current = null;
  }

  private start(meta: SnapshotMeta): void {
    this.abandon();
    const channel = new ChunkChannel();
    const written = this.storage.writeSnapshot(meta, channel);
    // An abandoned write rejects by design; a finished one is awaited by finish().
    written.then(
      () => channel.releaseAll(),
      () => channel.releaseAll(),
    );
    this.current = { meta, channel, written };
  }
}

/**
 * The leader's side: reads each chunk the core asks for from the snapshot's stored bytes
 * and sends it. Reads for one follower run one after another, so that its chunks leave
 * in order; they never hold up the Ready loop.
 */
export class SnapshotSender {
  private readonly queues = new Map<NodeId, Promise<void>>();

  constructor(
    private readonly self: NodeId,
    private readonly send: (m: Message) => void,
    private readonly onReadError: (chunk: OutgoingSnapshotChunk, err: unknown) => void,
  ) {}

  enqueue(chunk: OutgoingSnapshotChunk): void {
    const previous = this.queues.get(chunk.to) ?? Promise.resolve();
    const next = previous.then(() => this.sendOne(chunk));
    this.queues.set(chunk.to, next);
    // Drop the queue once drained, so that finished transfers hold no handles.
    void next.then(() => {
      if (this.queues.get(chunk.to) === next) this.queues.delete(chunk.to);
    });
  }

  private async sendOne(c: OutgoingSnapshotChunk): Promise<void> {
    let data: Uint8Array;
    try {
      data = c.length === 0 ? new Uint8Array(0) : await c.source.read(c.offset, c.length);
      if (data.byteLength !== c.length) throw new Error(`read ${data.byteLength} bytes at ${c.offset}, expected ${c.length}`);
    } catch (err) {
      // The chunk is lost like a dropped message: the follower's answers resend it.
      this.onReadError(c, err);
      return;
    }
    this.send({ type: "InstallSnapshot", from: this.self, to: c.to, term: c.term, meta: c.meta, offset: c.offset, data, done: c.done });
  }
}
