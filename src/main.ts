#!/usr/bin/env -S node --max-semi-space-size=2
// The daemon's Node flags are the ones on the line above (install.sh's wrapper and the test
// harness read them from there). A 2 MB young generation instead of V8's 16 MB keeps the
// daemon's RSS at 110 pods near 87 MB instead of 128 MB, with no measurable CPU cost
// (`npm run bench -- scale`).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, helpText, loadConfig } from './config/load';
import { Daemon } from './daemon';
import { runDoctor } from './doctor';
import { createLogger } from './log/logger';

// Node 20's AsyncResource.bind, which its HTTP/2 client runs for every request (each containerd
// call), wraps two accessors with util.deprecate each time, and its GC performance entries
// (prom-client watches them) do the same per collection: a few microseconds a call of
// Object.setPrototypeOf on fresh closures. With noDeprecation set, deprecate returns the function
// as it is. The daemon gives up Node's own deprecation warnings, which only name Node APIs the code
// uses and are for its developers: `node --trace-deprecation dist/src/main.js` keeps them.
if (!process.traceDeprecation && !process.throwDeprecation) process.noDeprecation = true;

function packageVersion(): string {
  // dist/src/main.js and src/main.ts both sit two levels below the package root.
  for (const candidate of [path.join(__dirname, '..', '..', 'package.json'), path.join(__dirname, '..', 'package.json')]) {
    try {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'cri-adapter' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'doctor') {
    process.exitCode = await runDoctor(argv.slice(1));
    return;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  let config;
  try {
    config = loadConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cri-adapter: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const daemon = new Daemon(config, logger, packageVersion());

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    daemon.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('unclean stop', { error: (err as Error).message });
        process.exit(1);
      },
    );
  };
  // SIGHUP re-reads the same sources (file, environment, flags) and applies what can change live.
  let reloading = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading.then(async () => {
      if (stopping) return;
      let next;
      try {
        next = loadConfig(argv);
      } catch (err) {
        logger.error('configuration reload refused; the running configuration is unchanged', {
          error: (err as Error).message.slice(0, 2000),
        });
        return;
      }
      await daemon.reload(next);
    }).catch((err: unknown) => {
      logger.error('configuration reload failed', { error: (err as Error).message });
    });
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // A bug in one call must not take every pod's runtime down with it; log it loudly instead.
  process.on('unhandledRejection', (reason) => {
    logger.error('unhandled promise rejection', { error: reason instanceof Error ? reason.stack : String(reason) });
  });

  try {
    await daemon.start();
  } catch (err) {
    logger.error('failed to start', { error: (err as Error).message });
    await daemon.stop().catch(() => undefined);
    process.exit(1);
  }
}

void main();
