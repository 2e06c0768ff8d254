import { PullImageRequest } from '../../src/gen/runtime/v1/api';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startContainerd, Containerd } from '../harness/containerd';
import type { CniNetwork } from '../harness/cni';
import { loadHarnessEnv } from '../harness/env';
import { waitFor } from '../harness/util';
import { TMP_PREFIX } from '../harness';
import { startAdapter, AdapterProcess } from '../support/adapter-process';
import { criError } from '../support/cri-client';

const MAIN = path.resolve(__dirname, '..', '..', 'dist', 'src', 'main.js');
const run = promisify(execFile);

function condition(status: { status?: { conditions: Array<{ type: string; status: boolean; reason: string; message: string }> } }, type: string) {
  return status.status!.conditions.find((c) => c.type === type)!;
}

describe('the CRI daemon against the harness containerd', () => {
  const h = loadHarnessEnv();
  let adapter: AdapterProcess;

  beforeAll(async () => {
    adapter = await startAdapter({ containerdAddress: h.containerd.address, cniConfDir: h.cni.confDir, namespace: 'cri-adapter-foundation' });
  });
  afterAll(async () => {
    await adapter?.stop();
  });

  it('answers Version with its own name and the CRI API version', async () => {
    const v = await adapter.client.runtime.version({ version: '' });
    expect(v).toEqual({ version: '0.1.0', runtimeName: 'cri-adapter', runtimeVersion: expect.stringMatching(/^\d+\.\d+\.\d+/), runtimeApiVersion: 'v1' });
  });

  it('reports runtime and network ready, its handlers, and verbose info', async () => {
    const s = await adapter.client.runtime.status({ verbose: true });
    expect(condition(s, 'RuntimeReady').status).toBe(true);
    expect(condition(s, 'NetworkReady')).toMatchObject({ status: true });
    expect(s.runtimeHandlers.map((r) => r.name).sort()).toEqual(['', 'runc']);
    const cfg = JSON.parse(s.info.config!);
    expect(cfg.containerdNamespace).toBe('cri-adapter-foundation');
    expect(JSON.parse(s.info.cniConfig!).name).toBe(h.cni.networkName);
  });

  it('omits verbose info unless asked', async () => {
    const s = await adapter.client.runtime.status({ verbose: false });
    expect(s.info).toEqual({});
  });

  it('reports the cgroup driver in RuntimeConfig', async () => {
    const r = await adapter.client.runtime.runtimeConfig({});
    expect(r.linux?.cgroupDriver).toBe(1 /* CGROUPFS */);
  });

  it('creates the namespace it was told to use in containerd', async () => {
    const { stdout } = await run('ctr', ['--address', h.containerd.address, 'namespaces', 'ls', '-q']);
    expect(stdout.split('\n')).toContain('cri-adapter-foundation');
  });

  it('serves the socket with mode 0660', () => {
    expect(statSync(adapter.socket).mode & 0o777).toBe(0o660);
  });

  it('answers an RPC it does not implement with UNIMPLEMENTED naming it', async () => {
    const err = await criError(adapter.client.runtime.checkpointContainer({ containerId: 'x', location: '/tmp/x', timeout: 0n }));
    expect(err.code).toBe(12);
    expect(err.details).toContain('CheckpointContainer');
  });

  it('refuses to start on a socket another live process serves', async () => {
    const r = spawnSync(process.execPath, [MAIN, '--listen', adapter.socket, '--containerd-address', h.containerd.address, '--root', path.join(adapter.dir, 'r2'), '--state', path.join(adapter.dir, 's2')], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('another process is serving');
    // and the first one still answers
    await adapter.client.runtime.version({ version: '' });
  });
});

describe('daemon lifecycle', () => {
  const h = loadHarnessEnv();

  it('replaces a stale socket file and removes its socket on SIGTERM', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cri-adapter-proc-'));
    const socket = path.join(dir, 'cri.sock');
    // A socket file nobody listens on, as an adapter killed with SIGKILL leaves it.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(existsSync(socket)).toBe(true);

    const adapter = await startAdapter({ containerdAddress: h.containerd.address, cniConfDir: h.cni.confDir, dir });
    await adapter.client.runtime.version({ version: '' });
    expect(await adapter.stop()).toBe(0);
    expect(existsSync(socket)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it('rejects an invalid setting naming the key, and lists every key in --help', () => {
    const bad = spawnSync(process.execPath, [MAIN, '--log-level', 'loud'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('logLevel');
    const help = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--registry-config-path');
    expect(help.stdout).toContain('CRI_ADAPTER_REGISTRY_CONFIG_PATH');
  });

  it('reports NetworkReady=false until a CNI config appears, then true without a restart', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cri-adapter-proc-'));
    const confDir = path.join(dir, 'net.d');
    mkdirSync(confDir);
    const adapter = await startAdapter({ containerdAddress: h.containerd.address, cniConfDir: confDir, dir });
    try {
      const before = condition(await adapter.client.runtime.status({ verbose: false }), 'NetworkReady');
      expect(before.status).toBe(false);
      expect(before.message).toContain(confDir);
      writeFileSync(
        path.join(confDir, '10-test.conflist'),
        JSON.stringify({ cniVersion: '1.0.0', name: 'late-net', plugins: [{ type: 'loopback' }] }),
      );
      await waitFor('NetworkReady', async () => {
        const c = condition(await adapter.client.runtime.status({ verbose: false }), 'NetworkReady');
        return c.status ? c : undefined;
      });
    } finally {
      await adapter.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts without containerd, then follows containerd going up, down and up again', async () => {
    const tmpDir = mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}restart-`));
    const address = path.join(tmpDir, 'containerd.sock');
    const start = () =>
      startContainerd({ tmpDir, criPlugin: false, registryHost: h.registry.host, sandboxImage: h.images.pause, cni: h.cni as unknown as CniNetwork });
    let containerd: Containerd | undefined;
    const adapter = await startAdapter({
      containerdAddress: address,
      cniConfDir: h.cni.confDir,
      extraArgs: ['--registry-config-path', h.registry.configPath],
    });
    const runtimeReady = async () => condition(await adapter.client.runtime.status({ verbose: false }), 'RuntimeReady');
    try {
      // Version answers with containerd absent; Status says why the runtime is not ready.
      await adapter.client.runtime.version({ version: '' });
      const down = await runtimeReady();
      expect(down.status).toBe(false);
      expect(down.message).toContain(address);
      // Calls that need containerd fail fast and say why.
      const err = await criError(adapter.client.image.listImages({ filter: undefined }));
      expect(err.code).toBe(14 /* UNAVAILABLE */);

      containerd = await start();
      await waitFor('RuntimeReady=true', async () => ((await runtimeReady()).status ? true : undefined));
      await adapter.client.image.listImages({ filter: undefined });

      await containerd.stop();
      await waitFor('RuntimeReady=false', async () => ((await runtimeReady()).status ? undefined : true));

      containerd = await start();
      await waitFor('RuntimeReady=true again', async () => ((await runtimeReady()).status ? true : undefined));

      // containerd is the store of record: an image removed behind the adapter's back is gone
      // from ListImages after the next resync (a reconnect), not kept from memory.
      await adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
      const listed = async () => (await adapter.client.image.listImages({ filter: undefined })).images.flatMap((i) => i.repoTags);
      expect(await listed()).toContain(h.images.busybox);
      const ctr = (...args: string[]) => run('ctr', ['--address', address, '-n', 'cri-adapter-test', ...args]);
      const records = (await ctr('images', 'ls', '-q')).stdout.split('\n').filter(Boolean);
      expect(records.length).toBeGreaterThan(0);
      await ctr('images', 'rm', ...records);
      await containerd.stop();
      containerd = await start();
      await waitFor('the vanished image to leave ListImages', async () => ((await listed()).includes(h.images.busybox) ? undefined : true));
      expect(await listed()).toEqual([]);
    } finally {
      await adapter.stop();
      await containerd?.stop();
      rmSync(tmpDir, { recursive: true, force: true });
    }
  });
});
