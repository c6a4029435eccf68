/**
 * Reading and producing snapshot bytes in pieces. A leaf: the node, the storage adapters
 * and state machines all use it, and it depends on nothing but the `SnapshotData` type.
 */
import type { SnapshotData } from "./core/messages.js";

export type { SnapshotData };

/**
 * What `StateMachine.snapshot()` may produce: all the bytes at once, or a stream of
 * chunks that the storage adapter writes out as they come (so that a large state is never
 * serialised into one buffer).
 * @public
 */
export type SnapshotSource = Uint8Array | AsyncIterable<Uint8Array>;

/** How many bytes {@link snapshotChunks} reads at a time unless told otherwise. */
const DEFAULT_READ_BYTES = 1 << 20;

/**
 * A {@link SnapshotData} over bytes already in memory (no copy).
 * @param bytes - The snapshot's bytes; must not change afterwards.
 * @returns A handle that reads from `bytes`.
 * @example
 * ```ts
 * await kv.restore(snapshotDataOf(bytes));
 * ```
 * @public
 */
export function snapshotDataOf(bytes: Uint8Array): SnapshotData {
  return {
    byteLength: bytes.byteLength,
    read: async (offset, length) => bytes.subarray(offset, Math.min(bytes.byteLength, offset + length)),
  };
}

/**
 * Reads a whole snapshot into one buffer: for small states, and tests.
 * @param data - The snapshot to read.
 * @returns Its bytes.
 * @public
 */
export async function snapshotBytes(data: SnapshotData): Promise<Uint8Array> {
  const out = new Uint8Array(data.byteLength);
  let offset = 0;
  for await (const chunk of snapshotChunks(data)) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Streams a snapshot's bytes in order, one read at a time.
 * @param data - The snapshot to read.
 * @param chunkBytes - The most bytes per chunk (default 1 MiB).
 * @param from - Where to start (default 0).
 * @returns The chunks, in order; together exactly the bytes from `from` to the end.
 * @throws RangeError when `chunkBytes` is not a positive integer or `from` is outside the snapshot.
 * @public
 */
export async function* snapshotChunks(data: SnapshotData, chunkBytes = DEFAULT_READ_BYTES, from = 0): AsyncGenerator<Uint8Array, void, undefined> {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`snapshotChunks: chunkBytes must be a positive integer, got ${String(chunkBytes)}`);
  if (!Number.isSafeInteger(from) || from < 0 || from > data.byteLength) throw new RangeError(`snapshotChunks: from must be within 0..${data.byteLength}, got ${String(from)}`);
  for (let offset = from; offset < data.byteLength; ) {
    const chunk = await data.read(offset, Math.min(chunkBytes, data.byteLength - offset));
    if (chunk.byteLength === 0) throw new RangeError(`snapshot read at ${offset} of ${data.byteLength} returned nothing`);
    offset += chunk.byteLength;
    yield chunk;
  }
}

/**
 * The part of a snapshot from `offset` on, as a snapshot of its own: for formats that put
 * a header of their own before another state machine's snapshot.
 * @param data - The whole snapshot.
 * @param offset - Where the part starts.
 * @returns A handle reading `data` from `offset`.
 * @throws RangeError when `offset` is outside the snapshot.
 * @public
 */
export function snapshotSlice(data: SnapshotData, offset: number): SnapshotData {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > data.byteLength) throw new RangeError(`snapshotSlice: offset must be within 0..${data.byteLength}, got ${String(offset)}`);
  return { byteLength: data.byteLength - offset, read: (at, length) => data.read(offset + at, length) };
}

/**
 * The chunks of a {@link SnapshotSource}, whichever form it has.
 * @param source - Bytes, or a stream of chunks.
 * @returns The chunks in order.
 * @public
 */
export async function* sourceChunks(source: SnapshotSource): AsyncGenerator<Uint8Array, void, undefined> {
  if (source instanceof Uint8Array) {
    yield source;
    return;
  }
  for await (const chunk of source) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError("a snapshot stream must yield Uint8Array chunks");
    yield chunk;
  }
}

/**
 * Collects a stream of chunks into one buffer: for storage that keeps snapshots in memory.
 * @param chunks - The chunks, in order.
 * @returns Their bytes, concatenated.
 * @public
 */
export async function collectChunks(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of chunks) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError("a snapshot stream must yield Uint8Array chunks");
    parts.push(chunk);
    total += chunk.byteLength;
  }
  return parts.length === 1 ? parts[0]! : concatBytes(parts, total);
}

/**
 * Concatenates byte arrays into a new one.
 * @param parts - The arrays, in order.
 * @param total - Their combined length, when the caller already knows it.
 * @internal
 */
export function concatBytes(parts: readonly Uint8Array[], total = parts.reduce((n, p) => n + p.byteLength, 0)): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}
