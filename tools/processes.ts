// Child processes and temp directories of the benchmarks (bench/), the soaks (scripts/) and
// the process-level tests (test/): spawning, stopping, waiting for exit. This is plumbing,
// not library code, so bench/, scripts/ and test/ all import it from here (library code
// they import only through "raftkit" and "raftkit/testing").
//
// Every child process and temp directory registered here (spawnLogged, track, makeTempDir)
// goes away however a benchmark or soak that calls installCleanup ends: normal return, a
// thrown error, Ctrl-C, SIGTERM, or its own time bound running out. (A SIGKILL of the
// benchmark itself cannot be caught; its children would then be left behind.) Without
// installCleanup (the tests), registering only keeps a list: nothing is installed.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let installed = false;

const isRunning = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

/**
 * Starts `command` with stdout and stderr appended to `logFile`, and registers it so that
 * it is killed when the benchmark ends.
 */
export function spawnLogged(command: string, args: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): ChildProcess {
  const fd = openSync(logFile, "a");
  try {
    const child = spawn(command, args, { stdio: ["ignore", fd, fd], env: env ?? process.env });
    track(child);
    return child;
  } finally {
    closeSync(fd); // the child has its own copy
  }
}

/** Registers a child started elsewhere. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  child.once("error", () => children.delete(child));
  return child;
}

/** Resolves with the child's exit code (null when a signal ended it) once it has exited, at once if it already has. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (!isRunning(child)) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** SIGKILL (kill -9: no chance to flush or close anything); resolves once the child is gone. */
export async function killChild(child: ChildProcess): Promise<void> {
  child.kill("SIGKILL");
  await exited(child);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (!isRunning(child)) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => {
    if (isRunning(child)) child.kill("SIGKILL");
  }, graceMs);
  await exited(child);
  clearTimeout(timer);
}

/** {@link stopChild} on every registered child at once. */
export async function stopAllChildren(graceMs = 3000): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c, graceMs)));
}

/** A fresh directory under the OS temp dir, removed when the benchmark ends. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Synchronous, so that it also works from the `exit` event. */
function killAllAndClean(): void {
  for (const child of children) {
    if (isRunning(child) && child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** How many registered children are still running (the final check of a benchmark). */
export function runningChildren(): number {
  return [...children].filter(isRunning).length;
}

/**
 * Installs the handlers that kill every registered child and remove every temp dir on any
 * exit, and a time bound after which the benchmark gives up (exit code 3).
 */
export function installCleanup(name: string): { setBoundMs(ms: number): void } {
  if (!installed) {
    installed = true;
    process.on("exit", killAllAndClean);
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.on(signal, () => {
        process.stderr.write(`\n${name}: ${signal}, killing every process it started\n`);
        process.exit(130);
      });
    }
    process.on("uncaughtException", (err) => {
      process.stderr.write(`${name}: ${err.stack ?? String(err)}\n`);
      process.exit(1);
    });
    process.on("unhandledRejection", (err) => {
      process.stderr.write(`${name}: unhandled rejection: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    });
  }
  let bound: NodeJS.Timeout | null = null;
  return {
    setBoundMs(ms: number) {
      if (bound !== null) clearTimeout(bound);
      bound = setTimeout(() => {
        process.stderr.write(`${name}: still running after its time bound of ${Math.round(ms / 1000)} s; giving up\n`);
        process.exit(3);
      }, ms);
      bound.unref();
    },
  };
}

/** Runs `main`, then stops every child gracefully; any error prints and exits 1. */
export function runMain(name: string, main: () => Promise<void>): void {
  main().then(
    async () => {
      await stopAllChildren();
      killAllAndClean();
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}

// ---------------------------------------------------------------- waiting

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a rejection "`what` within `timeoutMs` ms" if it takes longer. */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
