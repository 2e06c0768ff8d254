/**
 * The integration-test harness: a local registry with our busybox and pause
 * images, a CNI bridge network of its own, and a private containerd (with its
 * CRI plugin, for side-by-side benchmarks) — all under one tmp dir
 * `<os.tmpdir()>/cri-adapter-it-XXXXXX`, all removed again by stop().
 *
 *   const h = await startHarness();
 *   ... h.containerd.address, h.images.busybox ...
 *   await h.stop();
 *
 * A registry with basic auth for auth tests: startRegistry({ dir, auth }) from
 * ./registry next to this one (containerd's CRI plugin must keep pulling the
 * pause image anonymously, so the harness's own registry has no auth).
 *
 * Start order: packages → tmp dir → (registry ∥ image builds ∥ CNI + containerd)
 * → push images. containerd only needs the pause image's *name* to start, so
 * it does not wait for the push.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CniNetwork, setupCniNetwork, teardownCniNetwork } from './cni';
import { Containerd, startContainerd, stopContainerdSync } from './containerd';
import {
  BUSYBOX_REPO,
  BUSYBOX_TAG,
  BuiltImage,
  busyboxImage,
  compilePause,
  PAUSE_REPO,
  PAUSE_TAG,
  pauseImage,
  pushImage,
} from './images';
import { ensurePackages } from './packages';
import { Registry, startRegistry } from './registry';
import { freePort, killAllSync, listProcesses, mountsUnder, pidAlive, removeTree, unmountAllUnder } from './util';

export const TMP_PREFIX = 'cri-adapter-it-';

export interface HarnessOptions {
  /** Enable containerd's built-in CRI plugin (default true). */
  criPlugin?: boolean;
  /** Progress messages (default: silent unless CRI_ADAPTER_HARNESS_DEBUG=1). */
  log?: (msg: string) => void;
}

/** Everything a test needs to know; JSON-serialisable (see env.ts). */
export interface HarnessDescription {
  tmpDir: string;
  /** pid of the process that owns the harness. */
  ownerPid: number;
  containerd: {
    address: string;
    ttrpcAddress: string;
    root: string;
    state: string;
    /**
     * runc root of the CRI plugin's runc runtime. Give any other runtime (the
     * adapter under test, ctr --runc-root) a root of its own named
     * <tmpDir>/runc-<something>: stop() runs `runc delete --force` there too.
     */
    runcRoot: string;
    logPath: string;
    configPath: string;
    criPlugin: boolean;
    /** CRI plugin streaming server, 127.0.0.1:port. */
    streamServer?: string;
  };
  registry: {
    /** 127.0.0.1:port */
    host: string;
    /** hosts.toml dir (certs.d layout) that maps every registry to the local one over http. */
    configPath: string;
    logPath: string;
  };
  images: {
    /** e.g. 127.0.0.1:5000/cri-adapter-test/busybox:latest */
    busybox: string;
    pause: string;
  };
  imageDigests: { busybox: string; pause: string };
  cni: {
    confDir: string;
    binDir: string;
    /** e.g. 10.199.0.0/24 */
    subnet: string;
    gateway: string;
    bridge: string;
    networkName: string;
    /** Name network namespaces with this prefix and stop() deletes them. */
    netnsPrefix: string;
  };
}

export interface Harness extends HarnessDescription {
  stop(): Promise<void>;
  /** Synchronous stop, for exit handlers. */
  stopSync(): void;
  /** Plain data view, for JSON. */
  describe(): HarnessDescription;
}

const OWNER_FILE = 'owner.json';

function defaultLog(msg: string): void {
  if (process.env.CRI_ADAPTER_HARNESS_DEBUG === '1') process.stderr.write(`${msg}\n`);
}

/** Harness tmp dirs on this machine: [dir, owner pid]. */
function harnessDirs(): { dir: string; pid: number }[] {
  const base = os.tmpdir();
  let names: string[] = [];
  try {
    names = fs.readdirSync(base);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.startsWith(TMP_PREFIX))
    .map((n) => {
      const dir = path.join(base, n);
      let pid = -1;
      try {
        pid = Number((JSON.parse(fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as { pid: number }).pid);
      } catch {
        // no owner file yet (starting) or broken
      }
      return { dir, pid };
    });
}

/** Is another live harness (not `ownDir`) on this machine? */
function otherLiveHarness(ownDir: string): boolean {
  return harnessDirs().some((h) => h.dir !== ownDir && h.pid > 0 && pidAlive(h.pid));
}

/** Kill every process (but us) whose command line mentions dir. */
function killProcessesMentioning(dir: string): void {
  const pids = listProcesses()
    .filter((p) => p.pid !== process.pid && p.argv.some((a) => a.includes(dir)))
    .map((p) => p.pid);
  killAllSync(pids);
}

/** Clean up what a dead harness (crashed, SIGKILLed) left behind. */
export function cleanupStaleHarnesses(ownDir?: string): string[] {
  const cleaned: string[] = [];
  for (const h of harnessDirs()) {
    if (h.dir === ownDir) continue;
    if (h.pid > 0 && pidAlive(h.pid)) continue;
    if (h.pid <= 0) {
      // no owner file: only if older than a minute (another harness may be starting right now)
      try {
        if (Date.now() - fs.statSync(h.dir).mtimeMs < 60_000) continue;
      } catch {
        continue;
      }
    }
    stopContainerdSync({ address: path.join(h.dir, 'containerd.sock'), pid: -1 }, h.dir);
    killProcessesMentioning(h.dir);
    unmountAllUnder(h.dir);
    removeTree(h.dir);
    cleaned.push(h.dir);
  }
  return cleaned;
}

// ---------------------------------------------------------------------------
// Exit handling: stop live harnesses when the process ends or is interrupted.

const live = new Set<Harness>();
let handlersInstalled = false;

function stopAllSync(): void {
  for (const h of [...live]) {
    try {
      h.stopSync();
    } catch (e) {
      process.stderr.write(`harness cleanup: ${(e as Error).message}\n`);
    }
  }
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', stopAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      stopAllSync();
      process.removeListener(sig, handler);
      // keep the default behaviour (terminate) unless someone else handles the signal
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

// ---------------------------------------------------------------------------

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const log = opts.log ?? defaultLog;
  const t0 = Date.now();
  const lap = (what: string): void => log(`harness: ${what} at +${Date.now() - t0} ms`);

  const installed = await ensurePackages(log);
  if (installed.length > 0) lap(`installed ${installed.join(' ')}`);

  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), TMP_PREFIX));
  fs.chmodSync(tmpDir, 0o711);
  fs.writeFileSync(path.join(tmpDir, OWNER_FILE), JSON.stringify({ pid: process.pid, started: new Date().toISOString() }));
  const stale = cleanupStaleHarnesses(tmpDir);
  if (stale.length > 0) log(`harness: cleaned up after dead harnesses: ${stale.join(', ')}`);

  let registry: Registry | undefined;
  let containerd: Containerd | undefined;
  let cni: CniNetwork | undefined;
  let stopped = false;

  const stopSync = (): void => {
    if (stopped) return;
    stopped = true;
    live.delete(harness);
    const errors: string[] = [];
    const ts = Date.now();
    const step = (what: string, fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        errors.push(`${what}: ${(e as Error).message}`);
      }
      log(`harness stop: ${what} done at +${Date.now() - ts} ms`);
    };
    step('containerd', () =>
      containerd ? containerd.stopSync() : stopContainerdSync({ address: path.join(tmpDir, 'containerd.sock'), pid: -1 }, tmpDir),
    );
    step('registry', () => registry?.stopSync());
    step('network', () => cni && teardownCniNetwork(cni, { allNetns: !otherLiveHarness(tmpDir) }));
    step('processes', () => killProcessesMentioning(tmpDir));
    step('mounts', () => {
      const left = unmountAllUnder(tmpDir);
      if (left.length > 0) throw new Error(`still mounted: ${left.join(', ')}`);
    });
    step('tmp dir', () => {
      if (mountsUnder(tmpDir).length === 0) removeTree(tmpDir);
      if (fs.existsSync(tmpDir)) throw new Error(`${tmpDir} could not be removed`);
    });
    if (errors.length > 0) throw new Error(`harness stop left things behind:\n${errors.join('\n')}`);
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    // containerd and the registry get to exit through the event loop (reaped by node) …
    await Promise.all([containerd?.stop(), registry?.stop()]);
    // … the rest is synchronous
    stopSync();
  };

  const desc = {} as HarnessDescription;
  const harness: Harness = Object.assign(desc, {
    stop,
    stopSync,
    describe: (): HarnessDescription => JSON.parse(JSON.stringify(desc)) as HarnessDescription,
  });
  installExitHandlers();
  live.add(harness);

  try {
    const registryPort = await freePort();
    const registryHost = `127.0.0.1:${registryPort}`;
    const busyboxRef = `${registryHost}/${BUSYBOX_REPO}:${BUSYBOX_TAG}`;
    const pauseRef = `${registryHost}/${PAUSE_REPO}:${PAUSE_TAG}`;

    const settled = await Promise.allSettled([
      startRegistry({ dir: path.join(tmpDir, 'registry'), port: registryPort }).then((r) => {
        registry = r;
        lap('registry up');
        return r;
      }),
      (async () => {
        const pauseBin = await compilePause(path.join(tmpDir, 'build'));
        const built = { busybox: busyboxImage(), pause: pauseImage(pauseBin) };
        lap('images built');
        return built;
      })(),
      (async () => {
        cni = setupCniNetwork(tmpDir);
        const c = await startContainerd({
          tmpDir,
          criPlugin: opts.criPlugin ?? true,
          registryHost,
          sandboxImage: pauseRef,
          cni,
        });
        containerd = c;
        lap('containerd up');
        return c;
      })(),
    ]);
    // all three have settled, so whatever did start is known to stopSync() below
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    const [reg, images, ctrd] = settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as [
      Registry,
      { busybox: BuiltImage; pause: BuiltImage },
      Containerd,
    ];
    const [busyboxPushed, pausePushed] = await Promise.all([
      pushImage(reg.host, BUSYBOX_REPO, BUSYBOX_TAG, images.busybox),
      pushImage(reg.host, PAUSE_REPO, PAUSE_TAG, images.pause),
    ]);
    lap('images pushed');

    const net = cni as CniNetwork;
    Object.assign(desc, {
      tmpDir,
      ownerPid: process.pid,
      containerd: {
        address: ctrd.address,
        ttrpcAddress: ctrd.ttrpcAddress,
        root: ctrd.root,
        state: ctrd.state,
        runcRoot: ctrd.runcRoot,
        logPath: ctrd.logPath,
        configPath: ctrd.configPath,
        criPlugin: ctrd.criPlugin,
        streamServer: ctrd.streamServer,
      },
      registry: { host: reg.host, configPath: ctrd.registryConfigPath, logPath: reg.logPath },
      images: { busybox: busyboxRef, pause: pauseRef },
      imageDigests: { busybox: busyboxPushed.digest, pause: pausePushed.digest },
      cni: {
        confDir: net.confDir,
        binDir: net.binDir,
        subnet: net.subnet,
        gateway: net.gateway,
        bridge: net.bridge,
        networkName: net.networkName,
        netnsPrefix: net.netnsPrefix,
      },
    } satisfies HarnessDescription);
    return harness;
  } catch (e) {
    try {
      await Promise.all([containerd?.stop(), registry?.stop()]);
      stopSync();
    } catch (cleanupErr) {
      log(`harness: cleanup after failed start: ${(cleanupErr as Error).message}`);
    }
    throw e;
  }
}

export { loadHarnessEnv, harnessAvailable, HARNESS_ENV } from './env';
