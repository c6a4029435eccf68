/**
 * A small, fast, seeded pseudo-random generator (sfc32, seeded through splitmix32), so
 * that one integer seed reproduces a whole simulated run. Not for cryptography.
 *
 * @example
 * ```ts
 * const rng = new Prng(42);
 * const nextCommand = (rng: Prng, seq: number) => ({ key: `k${rng.int(10)}`, value: seq });
 * rng.pick(["put", "delete"]); // the same choice on every run with seed 42
 * ```
 * @public
 */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /**
   * A generator whose whole sequence follows from `seed`.
   * @param seed - Any number; only its low 32 bits (as an unsigned integer) count.
   */
  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
    for (let i = 0; i < 12; i++) this.next();
  }

  /**
   * The next draw.
   * @returns A uniform float in [0, 1).
   */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /**
   * A uniform integer below `n`.
   * @param n - The bound, a positive integer.
   * @returns An integer in [0, n).
   */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /**
   * A uniform float in a range.
   * @param lo - The lowest value.
   * @param hi - The bound (excluded).
   * @returns A float in [lo, hi).
   */
  between(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }

  /**
   * A biased coin.
   * @param p - The probability of `true`, from 0 to 1.
   * @returns `true` with probability `p`.
   */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /**
   * A uniformly chosen element.
   * @param items - A non-empty array.
   * @returns One of its elements.
   * @throws RangeError when `items` is empty.
   */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("Prng.pick from an empty array");
    return items[this.int(items.length)]!;
  }

  /**
   * A new generator whose sequence depends only on this one's next draw: for independent
   * streams (one per node, one for the clients...), so that adding draws to one stream does
   * not shift the others.
   * @returns The new generator.
   */
  fork(): Prng {
    return new Prng(Math.floor(this.next() * 4294967296));
  }
}
