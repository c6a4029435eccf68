/**
 * LevelStorage's snapshot data files. Snapshots can be large, so their bytes live in a
 * file of their own in the store's directory, never in LevelDB (whose compactions would
 * copy them over and over); the LevelDB snapshot record names the file and carries its
 * length and SHA-256.
 *
 * A file becomes visible only through that record, so writing one is crash-safe in this
 * order: write `<name>.tmp`, fsync it, rename it to `<name>`, fsync the directory (the
 * rename is then durable), and only then commit the record. A crash before the commit
 * leaves a temp file or an unreferenced file, which the next load removes.
 */
import { createHash } from "node:crypto";
import { open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { RaftError } from "../errors.js";

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
 * SHA-256 of `data`.
 * @internal
 */
export function sha256(data: Uint8Array): Uint8Array {
  const digest = createHash("sha256").update(data).digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

/**
 * Writes `data` as snapshot generation `generation` in `dir`: temp file, fsync, rename,
 * fsync of the directory (the fsyncs only when `sync`). Resolves once the file is durable
 * under its final name.
 * @internal
 */
export async function writeSnapshotFile(dir: string, generation: number, data: Uint8Array, sync: boolean): Promise<SnapshotFileInfo> {
  const fileName = snapshotFileName(generation);
  const checksum = sha256(data);
  const final = join(dir, fileName);
  const temp = final + TMP_SUFFIX;
  // "w" truncates a temp file left by an earlier crash at the same generation.
  const handle = await open(temp, "w");
  try {
    await handle.writeFile(data);
    if (sync) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, final);
  if (sync) await syncDirectory(dir);
  return { fileName, byteLength: data.byteLength, checksum };
}

/**
 * Reads a snapshot file and checks it against its record.
 * @throws RaftError `CORRUPT` when the name is not a snapshot file name, the file is
 * missing, or its length or checksum differs from the record's.
 * @internal
 */
export async function readSnapshotFile(dir: string, info: SnapshotFileInfo): Promise<Uint8Array> {
  if (snapshotGeneration(info.fileName) === undefined) {
    throw new RaftError("CORRUPT", `${dir}: the snapshot record names "${info.fileName}", which is not a snapshot file name`);
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, info.fileName));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new RaftError("CORRUPT", `${dir}: the snapshot file ${info.fileName} is missing`, { cause: err });
    throw new RaftError("STORAGE", `${dir}: reading the snapshot file ${info.fileName} failed`, { cause: err });
  }
  if (bytes.byteLength !== info.byteLength) {
    throw new RaftError("CORRUPT", `${dir}: the snapshot file ${info.fileName} is ${bytes.byteLength} bytes; its record says ${info.byteLength}`);
  }
  const actual = sha256(bytes);
  if (!equalBytes(actual, info.checksum)) {
    throw new RaftError("CORRUPT", `${dir}: the snapshot file ${info.fileName} fails its SHA-256 check`);
  }
  // A plain Uint8Array view (no copy): a Buffer would compare unequal to one in deep-equality checks.
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
