// SortedKeys against a plain sorted array, under seeded random inserts and deletes.
import { describe, expect, it } from "vitest";
import { SortedKeys } from "../src/kv/sorted-keys.js";
import { Prng } from "../src/testing/prng.js";

describe("SortedKeys", () => {
  it("matches a sorted array through random inserts, deletes and range reads", () => {
    const seed = Math.floor(Math.random() * 2 ** 31);
    console.log(`SortedKeys seed ${seed}`);
    const rng = new Prng(seed);
    const keys = new SortedKeys();
    const reference: string[] = [];
    const present = new Set<string>();
    for (let step = 0; step < 30_000; step++) {
      const key = `k${rng.int(5_000).toString().padStart(4, "0")}`;
      if (present.has(key) && rng.chance(0.4)) {
        keys.delete(key);
        present.delete(key);
        reference.splice(reference.indexOf(key), 1);
      } else if (!present.has(key)) {
        keys.insert(key);
        present.add(key);
        const at = reference.findIndex((k) => k > key);
        reference.splice(at < 0 ? reference.length : at, 0, key);
      }
      if (step % 1_000 === 0) {
        expect(keys.toArray(), `seed ${seed}`).toEqual(reference);
        const from = `k${rng.int(5_000).toString().padStart(4, "0")}`;
        expect([...keys.from(from)], `seed ${seed}`).toEqual(reference.filter((k) => k >= from));
        expect([...keys.from(from, true)], `seed ${seed}`).toEqual(reference.filter((k) => k > from));
      }
    }
    expect(keys.size).toBe(reference.length);
    expect(keys.toArray()).toEqual(reference);
    // Blocks split and merge away: rebuilding from the sorted keys gives the same order.
    expect(SortedKeys.fromSorted(reference).toArray()).toEqual(reference);
    expect([...SortedKeys.fromSorted(reference).from("")]).toEqual(reference);
  });

  it("is empty when built from nothing", () => {
    const keys = SortedKeys.fromSorted([]);
    expect(keys.size).toBe(0);
    expect([...keys.from("a")]).toEqual([]);
    keys.insert("b");
    keys.insert("a");
    expect(keys.toArray()).toEqual(["a", "b"]);
    keys.delete("a");
    keys.delete("b");
    expect(keys.toArray()).toEqual([]);
  });
});
