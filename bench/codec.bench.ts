// The KV command codecs side by side: the default JSON codec and kvCodec (binary), each
// encoding and decoding a put of a 100-byte value, as a leader encodes every proposal
// once and each follower decodes it once.
//   npm run build && npx tsx bench/codec.bench.ts
import { bench, do_not_optimize, run, summary } from "mitata";
import { jsonCodec, kvCodec, type KvCommand } from "raftkit";

const json = jsonCodec<KvCommand>();
const commands: KvCommand[] = Array.from({ length: 1024 }, (_, i) => ({ op: "put", key: `key-${i}`, value: "x".repeat(100) }));
const asJson = commands.map((c) => json.encode(c));
const asBinary = commands.map((c) => kvCodec.encode(c));
let i = 0;

summary(() => {
  bench("encode: jsonCodec", () => do_not_optimize(json.encode(commands[i++ & 1023]!)));
  bench("encode: kvCodec", () => do_not_optimize(kvCodec.encode(commands[i++ & 1023]!)));
});
summary(() => {
  bench("decode: jsonCodec", () => do_not_optimize(json.decode(asJson[i++ & 1023]!)));
  bench("decode: kvCodec", () => do_not_optimize(kvCodec.decode(asBinary[i++ & 1023]!)));
});

console.log(`bytes per put: jsonCodec ${asJson[0]!.byteLength}, kvCodec ${asBinary[0]!.byteLength}`);
await run();
