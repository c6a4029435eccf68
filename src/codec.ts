/**
 * How commands become bytes, on the wire and on disk. Encoding must be deterministic
 * enough that `decode(encode(cmd))` is equivalent to `cmd` on every node. Every node of a
 * cluster must use the same codec, and a codec must keep decoding what older versions of
 * it encoded, because the log and snapshots outlive the process.
 *
 * @example
 * ```ts
 * const bigintCodec: Codec<{ add: bigint }> = {
 *   encode: (cmd) => new TextEncoder().encode(cmd.add.toString()),
 *   decode: (bytes) => ({ add: BigInt(new TextDecoder().decode(bytes)) }),
 * };
 * ```
 * @public
 */
export interface Codec<T> {
  /**
   * Encodes a value to bytes. A throw propagates out of `propose()`, synchronously, and
   * nothing is proposed.
   * @param value - The command.
   * @returns Its encoding.
   */
  encode(value: T): Uint8Array;
  /**
   * Decodes bytes made by {@link Codec.encode}. A throw while applying a committed entry
   * is a broken invariant: the node stops and emits `error`.
   * @param bytes - An encoding made by `encode` (on this node or another).
   * @returns The command.
   */
  decode(bytes: Uint8Array): T;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

interface BufferLike {
  from(text: string, encoding: "utf8"): Uint8Array;
}
// On Node.js, Buffer encodes short strings about twice as fast as TextEncoder; elsewhere
// (browsers, workers) TextEncoder does the job.
const nodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;
const encodeUtf8: (text: string) => Uint8Array = nodeBuffer ? (text) => nodeBuffer.from(text, "utf8") : (text) => encoder.encode(text);

/**
 * The default codec: UTF-8 JSON. Works for any JSON-serialisable command (no `bigint`,
 * `Map`, `Date` or `undefined` fields: JSON drops or changes them).
 * @typeParam T - The command type.
 * @returns A codec that encodes with `JSON.stringify` and decodes with `JSON.parse`
 * (strict UTF-8; malformed bytes throw).
 * @public
 */
export function jsonCodec<T>(): Codec<T> {
  return {
    encode: (value) => encodeUtf8(JSON.stringify(value)),
    decode: (bytes) => JSON.parse(decoder.decode(bytes)) as T,
  };
}
