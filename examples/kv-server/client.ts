// The interactive client: a `kvapp>` prompt on a terminal; with stdin not a terminal, one
// command a line in and one result a line out, nothing else on stdout.
import { createInterface } from "node:readline";
import { httpBaseUrl } from "./address.js";
import { type ClientConfig, clientAddressOf } from "./args.js";
import { type ApiResponse, ClusterClient, ClusterUnavailableError } from "./cluster-client.js";
import { type Token, tokenize } from "./tokenize.js";

export const clientHelp = `commands:
  put KEY VALUE          set KEY to VALUE
  get KEY                print KEY's value (linearizable), or (not found)
  delete KEY             remove KEY
  list [PREFIX]          keys (with their values) that start with PREFIX, sorted; at most 1000
  cas KEY EXPECTED NEW   set KEY to NEW only if its value is EXPECTED;
                         write - or null for "absent": cas k - v creates k, cas k v - deletes it
  status                 every node's role, term and indexes
  members                the members (voters and learners) and their Raft addresses
  add-member ID HOST:PORT
                         add node ID, whose Raft listener is at HOST:PORT (start it with
                         --join, which does this itself, or with an empty --peers list)
  remove-member ID       remove node ID (the leader too: it hands over first)
  help                   this text
  quit                   leave (also exit, Ctrl-D)
Quote a key or value that has spaces or is literally - or null: put k "two words",
cas k "-" x. Double quotes take JSON escapes (\\n, \\", \\u00e9); single quotes are literal.
Values print as JSON strings, so that every result is one line.`;

const LIST_LIMIT = 1000;

/** A command's printed result, and whether it counts as a failure for the exit code. */
interface Outcome {
  readonly text: string;
  readonly failed: boolean;
}

export async function runClient(config: ClientConfig): Promise<number> {
  const endpoints = config.members.map((m) => httpBaseUrl(clientAddressOf(m)));
  // The server answers within its request timeout; a little more covers the network.
  const client = new ClusterClient(endpoints, config.timing.clientRetryMs, config.timing.requestTimeoutMs + 2_000);
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive, prompt: "kvapp> " });
  let failures = 0;
  if (interactive) {
    process.stdout.write(`raftkit-kv client for ${endpoints.join(", ")}\ntype help for the commands\n`);
    rl.on("SIGINT", () => rl.close());
    rl.prompt();
  }
  try {
    for await (const line of rl) {
      let tokens: Token[];
      try {
        tokens = tokenize(line);
      } catch (err) {
        tokens = [];
        failures++;
        process.stdout.write(`ERROR ${(err as Error).message}\n`);
      }
      if (tokens.length > 0) {
        const name = tokens[0]!.text.toLowerCase();
        if (name === "quit" || name === "exit") break;
        const outcome = await execute(client, name, tokens.slice(1), interactive, config.timing.membershipTimeoutMs + 2_000);
        if (outcome.failed) failures++;
        process.stdout.write(`${outcome.text}\n`);
      }
      if (interactive) rl.prompt();
    }
  } finally {
    rl.close();
    client.close();
  }
  if (interactive) process.stdout.write("\n"); // leave the terminal on a fresh line after Ctrl-C or Ctrl-D
  return failures > 0 && !interactive ? 1 : 0;
}

/** @param membershipTimeoutMs how long one membership request may take (the server's own timeout, and a little more) */
async function execute(client: ClusterClient, name: string, args: Token[], pretty: boolean, membershipTimeoutMs: number): Promise<Outcome> {
  const want = (n: number, shape: string): void => {
    if (args.length !== n) throw new CommandError(`usage: ${shape}`);
  };
  try {
    switch (name) {
      case "help":
        return { text: clientHelp, failed: false };
      case "put": {
        want(2, "put KEY VALUE");
        const res = await client.send("PUT", keyPath(args[0]!), { value: args[1]!.text }, "idempotent");
        return expect(res, 200, (b) => `OK index=${b["index"]}`);
      }
      case "get": {
        want(1, "get KEY");
        const res = await client.send("GET", keyPath(args[0]!), undefined, "idempotent");
        if (res.status === 404 && codeOf(res.body) === "NOT_FOUND") return { text: "(not found)", failed: false };
        return expect(res, 200, (b) => JSON.stringify(b["value"]));
      }
      case "delete": {
        want(1, "delete KEY");
        const res = await client.send("DELETE", keyPath(args[0]!), undefined, "idempotent");
        return expect(res, 200, (b) => `OK deleted=${b["deleted"]} index=${b["index"]}`);
      }
      case "list": {
        if (args.length > 1) throw new CommandError("usage: list [PREFIX]");
        const prefix = args[0]?.text ?? "";
        const res = await client.send("GET", `/v1/kv?prefix=${encodeURIComponent(prefix)}&limit=${LIST_LIMIT}`, undefined, "idempotent");
        return expect(res, 200, (b) => formatItems(b["items"] as { key: string; value: string }[], pretty));
      }
      case "cas": {
        want(3, "cas KEY EXPECTED NEW   (- or null for absent)");
        const body = { expected: orAbsent(args[1]!), value: orAbsent(args[2]!) };
        const res = await client.send("POST", `${keyPath(args[0]!)}/cas`, body, "once");
        if (res.status === 409 && codeOf(res.body) === "CAS_FAILED") {
          return { text: `CAS_FAILED current=${JSON.stringify((res.body as Record<string, unknown>)["current"] ?? null)}`, failed: false };
        }
        return expect(res, 200, (b) => `OK index=${b["index"]}`);
      }
      case "status":
        if (args.length > 0) throw new CommandError("usage: status");
        return { text: await statusOfAll(client, pretty), failed: false };
      case "members": {
        if (args.length > 0) throw new CommandError("usage: members");
        const res = await client.send("GET", "/v1/status", undefined, "idempotent");
        return expect(res, 200, (b) => formatMembers(b["members"], pretty));
      }
      case "add-member": {
        want(2, "add-member ID HOST:PORT");
        const id = memberId(args[0]!);
        // Adding a member that is already there (at the same address) is answered 200, so a retry is harmless.
        const res = await client.send("POST", "/v1/members", { id: Number(id), address: args[1]!.text }, "idempotent", membershipTimeoutMs);
        return expect(res, 200, (b) => formatMembers(b["members"], pretty));
      }
      case "remove-member": {
        want(1, "remove-member ID");
        const res = await client.send("DELETE", `/v1/members/${memberId(args[0]!)}`, undefined, "once", membershipTimeoutMs);
        return expect(res, 200, (b) => formatMembers(b["members"], pretty));
      }
      default:
        throw new CommandError(`unknown command ${JSON.stringify(name)}; type help`);
    }
  } catch (err) {
    if (err instanceof CommandError) return { text: `ERROR ${err.message}`, failed: true };
    if (err instanceof ClusterUnavailableError) return { text: `ERROR UNAVAILABLE: ${err.message}`, failed: true };
    throw err;
  }
}

class CommandError extends Error {}

function keyPath(key: Token): string {
  if (key.text === "") throw new CommandError("the key must not be empty");
  return `/v1/kv/${encodeURIComponent(key.text)}`;
}

/** An unquoted - or null means "absent" in cas; quoted, they are literal strings. */
function orAbsent(t: Token): string | null {
  return !t.quoted && (t.text === "-" || t.text === "null") ? null : t.text;
}

function expect(res: ApiResponse, status: number, format: (body: Record<string, unknown>) => string): Outcome {
  if (res.status === status && typeof res.body === "object" && res.body !== null) {
    return { text: format(res.body as Record<string, unknown>), failed: false };
  }
  const b = (typeof res.body === "object" && res.body !== null ? res.body : {}) as Record<string, unknown>;
  const code = typeof b["code"] === "string" ? b["code"] : `HTTP_${res.status}`;
  const message = typeof b["error"] === "string" ? b["error"] : JSON.stringify(res.body);
  return { text: `ERROR ${code}: ${message}`, failed: true };
}

function codeOf(body: unknown): unknown {
  return typeof body === "object" && body !== null ? (body as Record<string, unknown>)["code"] : undefined;
}

function memberId(t: Token): string {
  if (!/^[1-9][0-9]{0,8}$/.test(t.text)) throw new CommandError(`a member id is a positive integer, got ${JSON.stringify(t.text)}`);
  return t.text;
}

interface MemberLine {
  readonly id: string;
  readonly role?: string;
  readonly voter?: boolean;
  readonly address: string | null;
}

/** Piped: one line of JSON, [{id, role, address}]; on a terminal, one member a line. */
function formatMembers(members: unknown, pretty: boolean): string {
  const list = (Array.isArray(members) ? members : []) as MemberLine[];
  const rows = list.map((m) => ({ id: m.id, role: m.role ?? (m.voter ? "voter" : "learner"), address: m.address }));
  if (!pretty) return JSON.stringify(rows);
  return rows.map((m) => `node ${m.id}  ${m.role.padEnd(8)} ${m.address ?? "(address unknown)"}`).join("\n");
}

function formatItems(items: readonly { key: string; value: string }[], pretty: boolean): string {
  if (!pretty) return JSON.stringify(items);
  if (items.length === 0) return "(no keys)";
  const lines = items.map((i) => `${i.key} = ${JSON.stringify(i.value)}`);
  lines.push(`(${items.length} ${items.length === 1 ? "key" : "keys"}${items.length === LIST_LIMIT ? ", maybe more" : ""})`);
  return lines.join("\n");
}

async function statusOfAll(client: ClusterClient, pretty: boolean): Promise<string> {
  const all = await Promise.all(
    client.endpoints.map(async (url) => {
      try {
        const res = await client.sendTo(url, "GET", "/v1/status", 2_000);
        return { url, status: res.body as Record<string, unknown> };
      } catch (err) {
        return { url, error: (err as Error).message };
      }
    }),
  );
  if (!pretty) return JSON.stringify(all.map((s) => ("status" in s ? pick(s.status) : { url: s.url, error: s.error })));
  return all
    .map((s) => {
      if (!("status" in s)) return `${s.url}  unreachable (${s.error})`;
      const st = s.status;
      return `node ${st["id"]}  ${String(st["role"]).padEnd(13)} term ${st["term"]}  leader ${st["leader"] ?? "-"}  commit ${st["commitIndex"]}  applied ${st["appliedIndex"]}  ${s.url}`;
    })
    .join("\n");
}

function pick(st: Record<string, unknown>): Record<string, unknown> {
  const { id, role, term, leader, commitIndex, appliedIndex } = st;
  return { id, role, term, leader, commitIndex, appliedIndex };
}
