// Generates the API reference in docs/api from the doc models that `npm run api` leaves in
// temp/ (API Extractor, one model per entry point). Run it as `npm run api && tsx scripts/api-docs.ts`.
//
// API Documenter renders one page tree per package, and it refuses two models with the same
// package name; both of ours are "raftkit". So the model of the second entry point is
// renamed to the valid package name "raftkit-testing" for API Documenter, and the pages then
// say "raftkit/testing", which is how users import it.
import { execFileSync } from "node:child_process";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

const input = "temp/api-documenter";
const output = "docs/api";
const TESTING = "raftkit-testing";

await rm(input, { recursive: true, force: true });
await mkdir(input, { recursive: true });
await writeFile(join(input, "raftkit.api.json"), await readFile("temp/raftkit.api.json", "utf8"));
// Every canonical reference of the testing model starts with "raftkit!"; the package is
// the model's root item.
const testing = JSON.parse((await readFile("temp/raftkit-testing.api.json", "utf8")).replaceAll('"raftkit!', `"${TESTING}!`)) as {
  name: string;
  canonicalReference: string;
};
testing.name = TESTING;
testing.canonicalReference = `${TESTING}!`;
await writeFile(join(input, `${TESTING}.api.json`), JSON.stringify(testing, null, 2));

execFileSync(join("node_modules", ".bin", "api-documenter"), ["markdown", "--input-folder", input, "--output-folder", output], { stdio: "inherit" });

// Show the entry point as users import it.
let pages = 0;
for (const file of await readdir(output)) {
  if (!file.endsWith(".md")) continue;
  const path = join(output, file);
  const text = await readFile(path, "utf8");
  const fixed = text
    .replaceAll(`[${TESTING}](./${TESTING}.md)`, `[raftkit/testing](./${TESTING}.md)`)
    .replaceAll(`## ${TESTING} package`, "## raftkit/testing (the testing entry point of raftkit)");
  if (fixed !== text) await writeFile(path, fixed);
  pages++;
}
console.log(`${pages} pages in ${output}`);
