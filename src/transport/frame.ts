/**
 * Framing for stream transports: every frame is a 4-byte big-endian length, then a
 * protocol version byte, a frame kind byte and the payload. docs/wire-format.md has the
 * full layout. Portable (Uint8Array only) like the wire codec.
 */
import { RaftError } from "../errors.js";

/**
 * The protocol version this build speaks, carried in every frame header. A node refuses
 * frames of any other version (there is only one so far; a second would be negotiated in
 * the handshake).
 * @public
 */
export const PROTOCOL_VERSION = 1;

/**
 * The bytes before a frame's payload: length (4), version (1), kind (1).
 * @internal
 */
export const FRAME_HEADER_BYTES = 6;

/** The length prefix counts the version and kind bytes, so it is never below this. */
const MIN_FRAME_LENGTH = 2;

/**
 * The default bound on a frame's length prefix.
 * @internal
 */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * What a frame carries.
 * - `Handshake` (1): the first frame on a connection, a {@link Handshake} payload.
 * - `Message` (2): one encoded message.
 * Kind 3 is reserved for messages tagged with a Raft group id (multi-raft).
 * @internal
 */
export const FrameKind = { Handshake: 1, Message: 2 } as const;

/**
 * The value of a {@link FrameKind} member.
 * @internal
 */
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/**
 * One decoded frame.
 * @internal
 */
export interface Frame {
  /** The protocol version from the header (always {@link PROTOCOL_VERSION} once decoded). */
  readonly version: number;
  /** The frame kind byte. Not validated here: what kinds are allowed depends on the connection's state. */
  readonly kind: number;
  /** The payload. It may be a view of the decoder's input: consume it before the next push. */
  readonly payload: Uint8Array;
}

/**
 * Writes a frame header for a payload of `payloadBytes` bytes at `offset` in `target`
 * and returns the offset of the payload. Lets a sender lay out many frames in one buffer.
 * @internal
 */
export function writeFrameHeader(target: Uint8Array, offset: number, kind: FrameKind, payloadBytes: number): number {
  const length = payloadBytes + MIN_FRAME_LENGTH;
  if (!Number.isInteger(payloadBytes) || payloadBytes < 0 || length > 0xffffffff) {
    throw new RangeError(`frame payload must be 0 to ${0xffffffff - MIN_FRAME_LENGTH} bytes, got ${payloadBytes}`);
  }
  target[offset] = length >>> 24;
  target[offset + 1] = (length >>> 16) & 0xff;
  target[offset + 2] = (length >>> 8) & 0xff;
  target[offset + 3] = length & 0xff;
  target[offset + 4] = PROTOCOL_VERSION;
  target[offset + 5] = kind;
  return offset + FRAME_HEADER_BYTES;
}

/**
 * One frame holding `payload`, in one allocation.
 * @internal
 */
export function encodeFrame(kind: FrameKind, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  out.set(payload, writeFrameHeader(out, 0, kind, payload.length));
  return out;
}

/**
 * Options for {@link FrameDecoder}.
 * @internal
 */
export interface FrameDecoderOptions {
  /**
   * The largest length prefix accepted (the bytes after the prefix: version, kind and
   * payload). A larger one is refused as soon as its 4 bytes arrive, before any of the
   * frame is buffered.
   * @defaultValue {@link DEFAULT_MAX_FRAME_BYTES}
   */
  readonly maxFrameBytes?: number;
}

/**
 * Splits a byte stream into frames, whatever the chunking: a frame split across many
 * chunks, or many frames coalesced in one. Push chunks with {@link FrameDecoder.push} and
 * pull frames with {@link FrameDecoder.next}. Pulling one frame at a time lets the caller
 * change {@link FrameDecoder.maxFrameBytes} between frames (a small bound before the
 * handshake, the full one after).
 *
 * Memory: buffered bytes are at most one incomplete frame plus the last chunk, as long as
 * the caller pulls every available frame after each push. Chunks are kept as received and
 * joined only when a frame spans several of them, so a large frame costs one copy.
 *
 * After an error the decoder is spent: every later call throws the same error.
 * @internal
 */
export class FrameDecoder {
  /** The bound on the next length prefix read; may be changed between frames. */
  maxFrameBytes: number;

  private chunks: Uint8Array[] = [];
  /** Read offset into `chunks[0]`. */
  private head = 0;
  /** Unread bytes across `chunks`. */
  private buffered = 0;
  /** The current frame's length prefix once read, -1 before. */
  private frameLength = -1;
  private failure: RaftError | null = null;

  /** @throws RangeError when `maxFrameBytes` is not an integer from 2 to 2^32 - 1. */
  constructor(options: FrameDecoderOptions = {}) {
    const max = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isInteger(max) || max < MIN_FRAME_LENGTH || max > 0xffffffff) {
      throw new RangeError(`maxFrameBytes must be an integer from ${MIN_FRAME_LENGTH} to ${0xffffffff}, got ${max}`);
    }
    this.maxFrameBytes = max;
  }

  /** Bytes received and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Appends a chunk of the stream. */
  push(chunk: Uint8Array): void {
    if (this.failure !== null) throw this.failure;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete frame, or `null` when more bytes are needed.
   * @throws RaftError with code `CORRUPT` for a length prefix above `maxFrameBytes` or
   * below 2, or an unsupported protocol version.
   */
  next(): Frame | null {
    if (this.failure !== null) throw this.failure;
    try {
      return this.parse();
    } catch (err) {
      this.failure = err instanceof RaftError ? err : new RaftError("CORRUPT", "frame decoding failed", { cause: err });
      this.chunks = [];
      this.buffered = 0;
      throw this.failure;
    }
  }

  private parse(): Frame | null {
    if (this.frameLength < 0) {
      if (this.buffered < 4) return null;
      const length =
        this.peek(0) * 0x1000000 + ((this.peek(1) << 16) | (this.peek(2) << 8) | this.peek(3));
      // Checked before waiting for the payload: an oversized frame is never buffered.
      if (length > this.maxFrameBytes) {
        throw new RaftError("CORRUPT", `frame length ${length} exceeds maxFrameBytes ${this.maxFrameBytes}`);
      }
      if (length < MIN_FRAME_LENGTH) throw new RaftError("CORRUPT", `frame length ${length} is below ${MIN_FRAME_LENGTH}`);
      this.frameLength = length;
    }
    if (this.buffered >= 5) {
      const version = this.peek(4);
      if (version !== PROTOCOL_VERSION) {
        throw new RaftError("CORRUPT", `unsupported protocol version ${version} (this node speaks ${PROTOCOL_VERSION})`);
      }
    }
    const total = 4 + this.frameLength;
    if (this.buffered < total) return null;
    const bytes = this.take(total);
    this.frameLength = -1;
    return { version: bytes[4]!, kind: bytes[5]!, payload: bytes.subarray(FRAME_HEADER_BYTES) };
  }

  /** The byte `offset` bytes past the read position; the caller checked it is buffered. */
  private peek(offset: number): number {
    let at = this.head + offset;
    for (const chunk of this.chunks) {
      if (at < chunk.length) return chunk[at]!;
      at -= chunk.length;
    }
    throw new Error("FrameDecoder: peek past the buffered bytes");
  }

  /** Consumes `n` buffered bytes: a view when they lie in one chunk, else one copy. */
  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length - this.head >= n) {
      const view = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      this.buffered -= n;
      return view;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const count = Math.min(chunk.length - this.head, n - filled);
      out.set(chunk.subarray(this.head, this.head + count), filled);
      filled += count;
      this.head += count;
      if (this.head === chunk.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.buffered -= n;
    return out;
  }
}
