/**
 * A {@link SnapshotData} handle on a LevelStorage snapshot file, reading with positional
 * reads from a file descriptor it keeps open.
 *
 * Why an open descriptor rather than a path: the handle must stay readable after a newer
 * snapshot replaced its file and the file was unlinked (a leader may still be streaming
 * it to a follower). On POSIX an open descriptor keeps reading an unlinked file, and it
 * always reads the very file that was written or verified, never a later one at the same
 * path.
 *
 * Lifetime: the descriptor is closed when the handle is garbage collected (a
 * FinalizationRegistry holds the raw fd number, never the handle), or explicitly by
 * {@link disposeSnapshotData} on a path that hands the handle to nobody. It is not tied
 * to the storage being open: a handle stays readable after `LevelStorage.close()`, as a
 * `MemoryStorage` handle does, so that a transfer still running while a node stops never
 * reads a closed (or worse, reused) descriptor. Raw fds are used rather than
 * `fs/promises` FileHandles because Node warns about (and closes) a FileHandle that is
 * garbage collected open.
 */
import { close, read } from "node:fs";
import { promisify } from "node:util";
import type { SnapshotData } from "../core/messages.js";
import { RaftError } from "../errors.js";

const readAsync = promisify(read);

/** Closes the descriptor of a handle that was garbage collected without being disposed. */
const descriptors = new FinalizationRegistry<number>((fd) => {
  close(fd, () => {
    // Nothing to report to: the handle is gone, and a failed close leaks at most this fd.
  });
});

/** A descriptor value that is never a real one, marking a disposed handle. */
const DISPOSED = -1;

/**
 * Reads a snapshot file through a descriptor it owns. Created only by this module's
 * factory, so that every instance is registered for closing.
 */
class FileSnapshotData implements SnapshotData {
  readonly byteLength: number;
  /** The open descriptor, or {@link DISPOSED}. */
  private fd: number;
  /** Reads in flight: the descriptor must not be closed under them. */
  private reading = 0;
  /** Set by dispose() while reads were in flight: the last one closes the descriptor. */
  private closeWhenIdle = false;
  private readonly fileName: string;

  constructor(fd: number, byteLength: number, fileName: string) {
    this.fd = fd;
    this.byteLength = byteLength;
    this.fileName = fileName;
  }

  /**
   * Reads up to `length` bytes from `offset`: fewer only at the end of the snapshot.
   * @throws RangeError for an offset outside the snapshot or a negative length; RaftError
   * `STOPPED` after the handle was disposed, `CORRUPT` when the file is shorter than it
   * was when written or verified, `STORAGE` when the read fails.
   */
  async read(offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > this.byteLength) {
      throw new RangeError(`snapshot read offset must be within 0..${this.byteLength}, got ${String(offset)}`);
    }
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`snapshot read length must be a non-negative integer, got ${String(length)}`);
    if (this.fd === DISPOSED || this.closeWhenIdle) throw new RaftError("STOPPED", `the snapshot file ${this.fileName} was released`);
    // A fresh buffer per read: the caller may keep it (SnapshotData's contract).
    const out = new Uint8Array(Math.min(length, this.byteLength - offset));
    this.reading++;
    try {
      await readFully(this.fd, out, offset, this.fileName);
    } finally {
      // Using `this` after the await also keeps the handle reachable for the whole read,
      // so it cannot be collected (and its fd closed, then perhaps reused) mid-read.
      this.reading--;
      if (this.reading === 0 && this.closeWhenIdle) this.release();
    }
    return out;
  }

  /** Closes the descriptor now, or after the reads in flight. Idempotent. */
  dispose(): void {
    if (this.fd === DISPOSED) return;
    this.closeWhenIdle = true;
    if (this.reading === 0) this.release();
  }

  private release(): void {
    const fd = this.fd;
    this.fd = DISPOSED;
    // Unregistered first, so that the registry can never close this fd number again
    // after it was reused for another file.
    descriptors.unregister(this);
    close(fd, () => {
      // Best effort: the handle is done either way.
    });
  }
}

/**
 * Wraps an open descriptor of a snapshot file in a handle that owns it from now on.
 * @param fd - A descriptor open for reading; the caller must not use or close it afterwards.
 * @param byteLength - The file's length: the handle never reads past it.
 * @param fileName - For error messages.
 * @internal
 */
export function fileSnapshotData(fd: number, byteLength: number, fileName: string): SnapshotData {
  const data = new FileSnapshotData(fd, byteLength, fileName);
  descriptors.register(data, fd, data);
  return data;
}

/**
 * Closes a handle's descriptor at once (after any reads in flight), for a handle this
 * storage created but hands to nobody. Does nothing for any other {@link SnapshotData}.
 * @internal
 */
export function disposeSnapshotData(data: SnapshotData): void {
  if (data instanceof FileSnapshotData) data.dispose();
}

/** Fills `out` from `position`; the file must hold every byte (a short file is CORRUPT). */
async function readFully(fd: number, out: Uint8Array, position: number, fileName: string): Promise<void> {
  let done = 0;
  while (done < out.byteLength) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await readAsync(fd, out, done, out.byteLength - done, position + done));
    } catch (err) {
      throw new RaftError("STORAGE", `reading the snapshot file ${fileName} failed`, { cause: err });
    }
    if (bytesRead === 0) {
      throw new RaftError("CORRUPT", `the snapshot file ${fileName} ends at ${position + done} bytes, before the ${out.byteLength} bytes asked for at ${position}`);
    }
    done += bytesRead;
  }
}
