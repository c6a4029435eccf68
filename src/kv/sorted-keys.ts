/**
 * The keys of a map in ascending order, kept in blocks of at most {@link MAX_BLOCK} keys.
 *
 * Why blocks: one sorted array costs a shift of every later key on each insert or delete,
 * which grows with the map (about 20-50 µs per new key at a few hundred thousand keys, the
 * largest cost of applying a put of a new key). With blocks an insert or delete shifts at
 * most one block, after two binary searches; in-order iteration and a full copy (for a
 * snapshot) stay as cheap as with one array.
 * @internal
 */
export class SortedKeys {
  /** Non-empty blocks, each strictly ascending, each block's keys below the next block's. */
  private blocks: string[][] = [];
  private count = 0;

  /** Builds from keys already strictly ascending (not checked: the caller validated them). */
  static fromSorted(keys: readonly string[]): SortedKeys {
    const out = new SortedKeys();
    for (let i = 0; i < keys.length; i += HALF_BLOCK) out.blocks.push(keys.slice(i, i + HALF_BLOCK));
    out.count = keys.length;
    return out;
  }

  /** How many keys there are. */
  get size(): number {
    return this.count;
  }

  /** Adds `key`, which must not be present. */
  insert(key: string): void {
    const blocks = this.blocks;
    if (blocks.length === 0) {
      blocks.push([key]);
      this.count = 1;
      return;
    }
    // The first block whose last key is above `key`; past the end, the last block.
    const b = Math.min(this.blockFor(key), blocks.length - 1);
    const block = blocks[b]!;
    block.splice(lowerBound(block, key), 0, key);
    this.count++;
    if (block.length > MAX_BLOCK) blocks.splice(b + 1, 0, block.splice(HALF_BLOCK));
  }

  /** Removes `key`, which must be present. */
  delete(key: string): void {
    const b = this.blockFor(key);
    const block = this.blocks[b]!;
    block.splice(lowerBound(block, key), 1);
    this.count--;
    if (block.length === 0) this.blocks.splice(b, 1);
  }

  /** Every key, ascending, in a new array. */
  toArray(): string[] {
    const out = new Array<string>(this.count);
    let i = 0;
    for (const block of this.blocks) for (const key of block) out[i++] = key;
    return out;
  }

  /**
   * The keys from `from` on, ascending: those ≥ `from`, or > `from` when `exclusive`.
   * Must not be used across a change.
   */
  *from(from: string, exclusive = false): Generator<string, void, undefined> {
    const blocks = this.blocks;
    const first = this.blockFor(from);
    for (let b = first; b < blocks.length; b++) {
      const block = blocks[b]!;
      // Only the first block can hold keys before `from`.
      let i = b > first ? 0 : exclusive ? upperBound(block, from) : lowerBound(block, from);
      for (; i < block.length; i++) yield block[i]!;
    }
  }

  /** The index of the first block whose last key is ≥ `key` (blocks.length when none). */
  private blockFor(key: string): number {
    const blocks = this.blocks;
    let lo = 0;
    let hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const block = blocks[mid]!;
      if (block[block.length - 1]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A block splits in two above this many keys: shifting a thousand pointers is cheap. */
const MAX_BLOCK = 1024;
const HALF_BLOCK = MAX_BLOCK / 2;

/** The first index whose key is >= `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first index whose key is > `key`. */
function upperBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
