#!/usr/bin/env node
// raftkit-kv: the example KV server (with --node-id) or its interactive client (without).
import { UsageError, parseCommandLine, usage, type CommandLine, type ServerConfig } from "./args.js";
import { runClient } from "./client.js";
import { createLogger } from "./log.js";
import { type RunningServer, startServer } from "./server.js";

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

async function runServer(config: ServerConfig): Promise<void> {
  const logger = createLogger(`raftkit-kv[${config.nodeId}]`, config.timing.debugLog ? "debug" : "info");
  let shutdown: ((reason: string, code: number) => void) | null = null;
  const onFatal = (err: Error): void => {
    logger.error(`node stopped after an error: ${err.message}`);
    // A supervisor restarts it; the data dir holds everything acknowledged.
    if (shutdown !== null) shutdown("fatal error", EXIT_FAILURE);
    else process.exitCode = EXIT_FAILURE;
  };
  let server: RunningServer;
  try {
    server = await startServer(config, logger, onFatal);
  } catch (err) {
    logger.error(`cannot start: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(EXIT_FAILURE);
  }
  let signalled = false;
  shutdown = (reason, code) => {
    if (signalled) return;
    signalled = true;
    logger.info(`stopping (${reason})`);
    server.stop().then(
      () => {
        logger.info("stopped");
        process.exit(code);
      },
      (err: unknown) => {
        logger.error(`stop failed: ${String(err)}`);
        process.exit(EXIT_FAILURE);
      },
    );
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      // A second signal while stopping means: do not wait.
      if (signalled) process.exit(EXIT_FAILURE);
      shutdown?.(signal, 0);
    });
  }
  server.joined.catch((err: unknown) => {
    if (signalled) return;
    logger.error(`cannot join the cluster: ${err instanceof Error ? err.message : String(err)}`);
    shutdown?.("join failed", EXIT_FAILURE);
  });
}

let command: CommandLine;
try {
  command = parseCommandLine(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`raftkit-kv: ${err.message}\n${err.showUsage ? `\n${usage}\n` : ""}`);
  process.exit(EXIT_USAGE);
}

switch (command.kind) {
  case "help":
    process.stdout.write(`${usage}\n`);
    break;
  case "server":
    await runServer(command);
    break;
  case "client":
    process.exitCode = await runClient(command);
    break;
}
