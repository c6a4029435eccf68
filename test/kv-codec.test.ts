import { describe, expect, it } from "vitest";
import { jsonCodec } from "../src/codec.js";
import type { KvCommand } from "../src/kv/commands.js";
import { kvCodec } from "../src/kv/kv-codec.js";
import { Prng } from "../src/testing/prng.js";

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const utf8 = (s: string): number[] => [...new TextEncoder().encode(s)];

describe("kvCodec", () => {
  it("writes the documented layout: a tag, length-prefixed strings, the last one to the end", () => {
    expect([...kvCodec.encode({ op: "put", key: "ab", value: "xyz" })]).toEqual([0x01, 2, ...utf8("ab"), ...utf8("xyz")]);
    expect([...kvCodec.encode({ op: "delete", key: "ab" })]).toEqual([0x02, ...utf8("ab")]);
    expect([...kvCodec.encode({ op: "cas", key: "k", expected: "e", value: "v" })]).toEqual([0x03, 0b11, 1, ...utf8("k"), 1, ...utf8("e"), ...utf8("v")]);
    expect([...kvCodec.encode({ op: "cas", key: "k", expected: null, value: null })]).toEqual([0x03, 0, 1, ...utf8("k")]);
    // A 200-byte key needs a two-byte length.
    expect([...kvCodec.encode({ op: "put", key: "k".repeat(200), value: "" }).subarray(0, 3)]).toEqual([0x01, 0xc8, 0x01]);
  });

  it("round-trips every op, null and empty fields, long and non-ASCII strings", () => {
    const commands: KvCommand[] = [
      { op: "put", key: "a", value: "" },
      { op: "put", key: "ключ", value: "värde ✓ 🙂" },
      { op: "put", key: "k".repeat(300), value: "v".repeat(70_000) },
      { op: "put", key: "é".repeat(100), value: "x" }, // a 200-byte key: its length bytes are >= 0x80 in a non-ASCII entry
      { op: "delete", key: "日本" },
      { op: "cas", key: "k", expected: null, value: "v" },
      { op: "cas", key: "k", expected: "", value: null },
      { op: "cas", key: "k", expected: "ä".repeat(80), value: "" },
      { op: "cas", key: "k", expected: null, value: null },
    ];
    for (const cmd of commands) expect(kvCodec.decode(kvCodec.encode(cmd))).toEqual(cmd);
  });

  it("round-trips random commands (seeded)", () => {
    const seed = 20261128;
    const rng = new Prng(seed);
    const alphabet = ["a", "Z", "0", "-", "é", "€", "🙂", '"', "\\", "\n", "\u0000"];
    const text = (max: number): string => Array.from({ length: Math.floor(rng.next() * max) }, () => alphabet[Math.floor(rng.next() * alphabet.length)]!).join("");
    const orNull = (s: string): string | null => (rng.next() < 0.3 ? null : s);
    for (let i = 0; i < 2000; i++) {
      const r = rng.next();
      const key = text(200);
      const cmd: KvCommand =
        r < 0.4 ? { op: "put", key, value: text(400) } : r < 0.6 ? { op: "delete", key } : { op: "cas", key, expected: orNull(text(150)), value: orNull(text(150)) };
      const decoded = kvCodec.decode(kvCodec.encode(cmd));
      if (JSON.stringify(decoded) !== JSON.stringify(cmd)) throw new Error(`seed ${seed}, command ${i}: ${JSON.stringify(cmd)} came back as ${JSON.stringify(decoded)}`);
    }
  });

  it("decodes what the default JSON codec wrote, so an existing log can switch to it", () => {
    const json = jsonCodec<KvCommand>();
    const cmd: KvCommand = { op: "cas", key: "k", expected: "ä", value: null };
    expect(kvCodec.decode(json.encode(cmd))).toEqual(cmd);
  });

  it("refuses malformed entries with CORRUPT", () => {
    const bad: [string, Uint8Array][] = [
      ["empty", bytes()],
      ["an unknown tag", bytes(0x09, 1, 0x61)],
      ["a put without a key length", bytes(0x01)],
      ["a key longer than the entry", bytes(0x01, 5, 0x61)],
      ["a length of more than 5 bytes", bytes(0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)],
      ["a length not minimally encoded", bytes(0x01, 0x81, 0x00, 0x61)],
      ["a cas without flags", bytes(0x03)],
      ["unknown cas flags", bytes(0x03, 0b100, 1, 0x61)],
      ["bytes after a cas without value", bytes(0x03, 0, 1, 0x61, 0x62)],
      ["a cas expected value longer than the entry", bytes(0x03, 0b01, 1, 0x61, 9, 0x62)],
      ["invalid UTF-8", bytes(0x01, 1, 0x61, 0xff, 0xfe)],
      // Valid UTF-8 as a whole, but the length cuts "é" (c3 a9) between key and value.
      ["a character split by a length", bytes(0x01, 1, 0xc3, 0xa9)],
      ["a lone continuation byte in a delete", bytes(0x02, 0x80)],
    ];
    for (const [what, entry] of bad) {
      expect(() => kvCodec.decode(entry), what).toThrow(expect.objectContaining({ code: "CORRUPT" }));
    }
  });

  it("refuses an unknown op when encoding, before anything is proposed", () => {
    expect(() => kvCodec.encode({ op: "increment", key: "a" } as unknown as KvCommand)).toThrow(TypeError);
  });
});
