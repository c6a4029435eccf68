/**
 * How commands become bytes, on the wire and on disk. Encoding must be deterministic
 * enough that `decode(encode(cmd))` is equivalent to `cmd` on every node.
 * @public
 */
export interface Codec<T> {
  /** Encodes a value to bytes. */
  encode(value: T): Uint8Array;
  /** Decodes bytes made by {@link Codec.encode}; throws on malformed input. */
  decode(bytes: Uint8Array): T;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The default codec: UTF-8 JSON. Works for any JSON-serialisable command.
 * @public
 */
export function jsonCodec<T>(): Codec<T> {
  return {
    encode: (value) => encoder.encode(JSON.stringify(value)),
    decode: (bytes) => JSON.parse(decoder.decode(bytes)) as T,
  };
}
