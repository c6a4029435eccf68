// Splits a client command line into words, with quoting for values that have spaces.

export interface Token {
  readonly text: string;
  /** Whether the word was quoted: a quoted - or null is a literal string, not "absent". */
  readonly quoted: boolean;
}

/**
 * Words are separated by whitespace. "double quotes" are JSON strings (\n, \", \u00e9);
 * 'single quotes' are literal. A quote opens a word only at its start.
 * @throws Error on an unterminated or malformed quoted word
 */
export function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === "\\" ? 2 : 1;
      if (j >= line.length) throw new Error(`unterminated "quote" at column ${i + 1}`);
      try {
        tokens.push({ text: JSON.parse(line.slice(i, j + 1)) as string, quoted: true });
      } catch {
        throw new Error(`bad escape in the quoted word at column ${i + 1}`);
      }
      i = j + 1;
    } else if (c === "'") {
      const j = line.indexOf("'", i + 1);
      if (j < 0) throw new Error(`unterminated 'quote' at column ${i + 1}`);
      tokens.push({ text: line.slice(i + 1, j), quoted: true });
      i = j + 1;
    } else {
      let j = i;
      while (j < line.length && !/\s/.test(line[j]!)) j++;
      tokens.push({ text: line.slice(i, j), quoted: false });
      i = j;
    }
    if (i < line.length && !/\s/.test(line[i]!)) throw new Error(`put a space after the quoted word ending at column ${i}`);
  }
  return tokens;
}
