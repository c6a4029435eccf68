/**
 * LevelStorage's snapshot data files. Snapshots can be large, so their bytes live in a
 * file of their own in the store's directory, never in LevelDB (whose compactions would
 * copy them over and over); the LevelDB snapshot record names the file and carries its
 * length and SHA-256.
 *
 * A file becomes visible only through that record, so writing one is crash-safe in this
 * order: stream the bytes to `<name>.tmp` (hashing them as they pass), fsync it, rename
 * it to `<name>`, fsync the directory (the rename is then durable), and only then commit
 * the record. A crash before the commit leaves a temp file or an unreferenced file, which
 * the next load removes.
 *
 * Files are read and written through raw descriptors with positional I/O: the descriptor
 * a file was written (or verified) through becomes the {@link SnapshotData} handle's, see
 * snapshot-file-data.ts.
 */
import { createHash } from "node:crypto";
import { close, fstat, fsync, open as openFd, read, write } from "node:fs";
import { open, readdir, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { RaftError } from "../errors.js";

const openAsync = promisify(openFd);
const writeAsync = promisify(write);
const readAsync = promisify(read);
const fsyncAsync = promisify(fsync);
const fstatAsync = promisify(fstat);
const closeAsync = promisify(close);

/**
 * The most bytes hashed and written (or read and hashed) in one step. A producer may hand
 * over one huge chunk; cutting it into views of this size keeps every synchronous hash
 * update short, so a large snapshot never holds up the event loop for long.
 */
const STEP_BYTES = 1 << 20;

/**
 * A written snapshot file: what the snapshot record stores about it.
 * @internal
 */
export interface SnapshotFileInfo {
  /** The file's name inside the store's directory. */
  readonly fileName: string;
  /** The file's length in bytes. */
  readonly byteLength: number;
  /** SHA-256 of the file's bytes. */
  readonly checksum: Uint8Array;
}

/**
 * Names are `snapshot-<generation as 16 hex digits>.snap`. Each new snapshot gets the
 * next generation, so a new file never replaces the one the committed record names (a
 * crash between the rename and the commit must leave the old snapshot intact).
 */
const NAME = /^snapshot-([0-9a-f]{16})\.snap$/;
const STRAY = /^snapshot-([0-9a-f]{16})\.snap(\.tmp)?$/;
const TMP_SUFFIX = ".tmp";

/**
 * The file name of snapshot generation `generation`.
 * @internal
 */
export function snapshotFileName(generation: number): string {
  return `snapshot-${generation.toString(16).padStart(16, "0")}.snap`;
}

/**
 * The generation in a snapshot file name, or undefined when `name` is not one (the name
 * comes from disk: anything else, a path included, is refused by the caller).
 * @internal
 */
export function snapshotGeneration(name: string): number | undefined {
  const match = NAME.exec(name);
  if (match === null) return undefined;
  const generation = Number.parseInt(match[1]!, 16);
  return Number.isSafeInteger(generation) ? generation : undefined;
}

/**
 * A snapshot file just written, and the descriptor it was written through (open for
 * reading, now naming the file under its final name). The caller owns the descriptor:
 * it wraps it in a handle, or closes it with {@link closeDescriptor}.
 * @internal
 */
export interface WrittenSnapshotFile {
  readonly info: SnapshotFileInfo;
  readonly fd: number;
}

/**
 * How {@link writeSnapshotFile} writes.
 * @internal
 */
export interface WriteSnapshotFileOptions {
  /** Whether to fsync the file and the directory (the store's `sync` option). */
  readonly sync: boolean;
  /**
   * Abandons a write that is waiting for its next chunk, with the signal's reason: a
   * closing store must not wait for a stream that may never end.
   */
  readonly signal?: AbortSignal;
}

/**
 * Streams `chunks` into snapshot generation `generation` in `dir`: temp file (hashed and
 * written piece by piece, never joined into one buffer), fsync, rename, fsync of the
 * directory (the fsyncs only when `options.sync`). Resolves once the file is durable
 * under its final name.
 *
 * When the write does not complete, nothing stays behind (no descriptor, no file), and
 * the error says why: the stream's own error as it was thrown (a transfer abandoned), the
 * signal's reason, a TypeError for a chunk that is not a Uint8Array, or RaftError
 * `STORAGE` for an I/O failure.
 * @internal
 */
export async function writeSnapshotFile(dir: string, generation: number, chunks: AsyncIterable<Uint8Array>, options: WriteSnapshotFileOptions): Promise<WrittenSnapshotFile> {
  const fileName = snapshotFileName(generation);
  const final = join(dir, fileName);
  const temp = final + TMP_SUFFIX;
  // Opened for reading too, so that this descriptor can serve the handle: it then reads
  // exactly the file written here. "w+" truncates a temp file a crash left at this name.
  const fd = await io(openAsync(temp, "w+"), `creating ${temp}`);
  let written: Omit<SnapshotFileInfo, "fileName">;
  try {
    written = await streamInto(fd, chunks, temp, options.signal);
    if (options.sync) await io(fsyncAsync(fd), `syncing ${temp}`);
    await io(rename(temp, final), `renaming ${temp}`);
  } catch (err) {
    await closeDescriptor(fd);
    await removeFile(dir, fileName + TMP_SUFFIX).catch(noop);
    throw err;
  }
  try {
    if (options.sync) await syncDirectory(dir);
  } catch (err) {
    // The rename may not be durable: the file is no use to anyone, so it goes too.
    await closeDescriptor(fd);
    await removeFile(dir, fileName).catch(noop);
    throw new RaftError("STORAGE", `syncing the directory ${dir} failed`, { cause: err });
  }
  return { info: { fileName, ...written }, fd };
}

/**
 * Writes every chunk at the end of the file at `fd`, hashing as it goes; each chunk is
 * written before the next one is asked for, which paces the producer to the disk.
 * @returns The length written and its SHA-256.
 */
async function streamInto(fd: number, chunks: AsyncIterable<Uint8Array>, path: string, signal: AbortSignal | undefined): Promise<Omit<SnapshotFileInfo, "fileName">> {
  if (typeof chunks !== "object" || chunks === null || typeof chunks[Symbol.asyncIterator] !== "function") {
    throw new TypeError("snapshot chunks must be an AsyncIterable of Uint8Array");
  }
  const iterator = chunks[Symbol.asyncIterator]();
  const hash = createHash("sha256");
  let position = 0;
  for (;;) {
    let next: IteratorResult<Uint8Array>;
    try {
      next = await nextChunk(iterator, signal);
    } catch (err) {
      // A stream that threw is finished; one cut off by the signal is told to stop.
      if (signal?.aborted === true) stopSource(iterator);
      throw err;
    }
    if (next.done === true) break;
    const chunk: unknown = next.value;
    try {
      if (!(chunk instanceof Uint8Array)) throw new TypeError("a snapshot stream must yield Uint8Array chunks");
      for (let at = 0; at < chunk.byteLength; at += STEP_BYTES) {
        const piece = chunk.subarray(at, Math.min(chunk.byteLength, at + STEP_BYTES));
        hash.update(piece);
        await writeFully(fd, piece, position, path);
        position += piece.byteLength;
      }
    } catch (err) {
      stopSource(iterator);
      throw err;
    }
  }
  // A copy: the digest Buffer may be a view into a shared pool.
  return { byteLength: position, checksum: new Uint8Array(hash.digest()) };
}

/** The iterator's next result, or the signal's reason once it aborts, whichever comes first. */
function nextChunk(iterator: AsyncIterator<Uint8Array>, signal: AbortSignal | undefined): Promise<IteratorResult<Uint8Array>> {
  if (signal === undefined) return iterator.next();
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const done = (): void => signal.removeEventListener("abort", onAbort);
    // A result that comes after the abort settles nothing; its rejection is handled here.
    Promise.resolve()
      .then(() => iterator.next())
      .then(
        (result) => {
          done();
          resolve(result);
        },
        (err: unknown) => {
          done();
          reject(err);
        },
      );
  });
}

/** Tells a source that its chunks are no longer wanted (an async generator runs its `finally`). */
function stopSource(iterator: AsyncIterator<Uint8Array>): void {
  if (typeof iterator.return !== "function") return;
  Promise.resolve()
    .then(() => iterator.return!())
    .catch(noop);
}

/** Writes all of `bytes` at `position` (a write may be partial). */
async function writeFully(fd: number, bytes: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await io(writeAsync(fd, bytes, done, bytes.byteLength - done, position + done), `writing ${path}`);
    if (bytesWritten === 0) throw new RaftError("STORAGE", `writing ${path} made no progress`);
    done += bytesWritten;
  }
}

/**
 * Opens a snapshot file for reading and checks it against its record, streaming the
 * file through SHA-256 (never reading it into memory whole).
 * @returns The open descriptor, verified; the caller owns it.
 * @throws RaftError `CORRUPT` when the name is not a snapshot file name, the file is
 * missing, or its length or checksum differs from the record's; `STORAGE` when it cannot
 * be read.
 * @internal
 */
export async function openSnapshotFile(dir: string, info: SnapshotFileInfo): Promise<number> {
  if (snapshotGeneration(info.fileName) === undefined) {
    throw new RaftError("CORRUPT", `${dir}: the snapshot record names "${info.fileName}", which is not a snapshot file name`);
  }
  let fd: number;
  try {
    fd = await openAsync(join(dir, info.fileName), "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new RaftError("CORRUPT", `${dir}: the snapshot file ${info.fileName} is missing`, { cause: err });
    throw new RaftError("STORAGE", `${dir}: reading the snapshot file ${info.fileName} failed`, { cause: err });
  }
  try {
    await verifySnapshotFile(fd, dir, info);
    return fd;
  } catch (err) {
    await closeDescriptor(fd);
    throw err;
  }
}

/** Checks the open file's length and SHA-256 against its record, one piece at a time. */
async function verifySnapshotFile(fd: number, dir: string, info: SnapshotFileInfo): Promise<void> {
  const what = `${dir}: reading the snapshot file ${info.fileName}`;
  const { size } = await io(fstatAsync(fd), what);
  if (size !== info.byteLength) {
    throw new RaftError("CORRUPT", `${dir}: the snapshot file ${info.fileName} is ${size} bytes; its record says ${info.byteLength}`);
  }
  const hash = createHash("sha256");
  const buffer = new Uint8Array(Math.min(STEP_BYTES, size));
  for (let position = 0; position < size; ) {
    const { bytesRead } = await io(readAsync(fd, buffer, 0, Math.min(buffer.byteLength, size - position), position), what);
    if (bytesRead === 0) throw new RaftError("CORRUPT", `${dir}: the snapshot file ${info.fileName} shrank while it was being verified`);
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  if (!equalBytes(hash.digest(), info.checksum)) {
    throw new RaftError("CORRUPT", `${dir}: the snapshot file ${info.fileName} fails its SHA-256 check`);
  }
}

/**
 * Closes a descriptor that nothing uses any more. A failed close is ignored: the
 * descriptor is given up either way, and there is nothing to retry.
 * @internal
 */
export async function closeDescriptor(fd: number): Promise<void> {
  await closeAsync(fd).catch(noop);
}

/**
 * Lists the snapshot files and temp files in `dir` other than `keep`: what a crash
 * between writing a file and committing (or after committing, before removing the old
 * one) leaves behind. Also returns the highest generation seen, so that a new file never
 * reuses a leftover's name.
 * @internal
 */
export async function findStraySnapshotFiles(dir: string, keep: string | undefined): Promise<{ stray: string[]; maxGeneration: number }> {
  const stray: string[] = [];
  let maxGeneration = 0;
  for (const name of await readdir(dir)) {
    const match = STRAY.exec(name);
    if (match === null) continue;
    const generation = Number.parseInt(match[1]!, 16);
    if (Number.isSafeInteger(generation)) maxGeneration = Math.max(maxGeneration, generation);
    if (name !== keep) stray.push(name);
  }
  return { stray, maxGeneration };
}

/**
 * Removes a file in `dir`; a missing file is fine (removal is cleanup, and may repeat
 * after a crash).
 * @internal
 */
export async function removeFile(dir: string, name: string): Promise<void> {
  try {
    await unlink(join(dir, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** Makes a rename in `dir` durable. Skipped on Windows, where Node cannot fsync a directory handle. */
async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Turns an I/O failure into RaftError `STORAGE` naming what failed. */
async function io<T>(operation: Promise<T>, what: string): Promise<T> {
  try {
    return await operation;
  } catch (err) {
    throw new RaftError("STORAGE", `${what} failed`, { cause: err });
  }
}

function noop(): void {}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
