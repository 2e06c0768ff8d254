/**
 * Smoke test of the test harness through the real parts: the shared harness
 * from globalSetup answers, and a private harness pulls and runs our images
 * with ctr, runs the pause image and stops it with SIGTERM, and leaves
 * nothing behind after stop().
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { loadHarnessEnv } from '../harness/env';
import { Harness, startHarness } from '../harness/index';
import { listProcesses, mountsUnder, run, waitFor } from '../harness/util';

async function ctr(address: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return (await run('ctr', ['--address', address, ...args], { timeoutMs })).stdout;
}

function httpGet(url: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      })
      .on('error', reject);
  });
}

describe('shared harness from globalSetup', () => {
  test('containerd answers Version and its CRI plugin is loaded', async () => {
    const h = loadHarnessEnv();
    const version = await ctr(h.containerd.address, ['version']);
    expect(version).toMatch(/Server:\s*\n\s*Version:\s*\S+/);
    const plugins = await ctr(h.containerd.address, ['plugins', 'ls']);
    expect(plugins).toMatch(/io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok/);
  });

  test('the registry serves the pushed images', async () => {
    const h = loadHarnessEnv();
    const accept = 'application/vnd.oci.image.manifest.v1+json';
    const bb = await httpGet(`http://${h.registry.host}/v2/cri-adapter-test/busybox/manifests/latest`, { accept });
    expect(bb.status).toBe(200);
    expect(bb.headers['docker-content-digest']).toBe(h.imageDigests.busybox);
    const pause = await httpGet(`http://${h.registry.host}/v2/cri-adapter-test/pause/manifests/3.10`, { accept });
    expect(pause.status).toBe(200);
    expect(h.images.busybox).toBe(`${h.registry.host}/cri-adapter-test/busybox:latest`);
    expect(h.images.pause).toBe(`${h.registry.host}/cri-adapter-test/pause:3.10`);
  });
});

describe('a private harness', () => {
  let h: Harness | undefined;
  const ns = 'harness-check';

  beforeAll(async () => {
    h = await startHarness({ criPlugin: true });
  });

  afterAll(async () => {
    // normally already stopped by the last test
    await h?.stop().catch(() => undefined);
  });

  /** ctr flags that keep runc state and FIFOs inside the harness tmp dir. */
  const runFlags = (): string[] => {
    const tmp = (h as Harness).tmpDir;
    return ['--runc-root', path.join(tmp, 'runc-ctr'), '--fifo-dir', path.join(tmp, 'fifo')];
  };

  test('pulls busybox from the local registry and runs it', async () => {
    const { containerd, images } = h as Harness;
    await ctr(containerd.address, ['-n', ns, 'images', 'pull', '--plain-http', images.busybox]);
    const out = await ctr(containerd.address, ['-n', ns, 'run', '--rm', ...runFlags(), images.busybox, 't1', '/bin/echo', 'hello']);
    expect(out.trim()).toBe('hello');
    const id = await ctr(containerd.address, ['-n', ns, 'run', '--rm', ...runFlags(), images.busybox, 't2', 'su', 'app', '-c', 'id']);
    expect(id.trim()).toBe('uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)');
  });

  test('the pause image runs as 65535 and exits 0 on SIGTERM', async () => {
    const { containerd, images } = h as Harness;
    await ctr(containerd.address, ['-n', ns, 'images', 'pull', '--plain-http', images.pause]);
    await ctr(containerd.address, ['-n', ns, 'run', '-d', ...runFlags(), images.pause, 'p1']);
    const running = await ctr(containerd.address, ['-n', ns, 'tasks', 'ls']);
    expect(running).toMatch(/p1\s+\d+\s+RUNNING/);
    const pid = Number(/p1\s+(\d+)/.exec(running)?.[1]);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(/^Uid:\s+65535\s/m);
    await ctr(containerd.address, ['-n', ns, 'tasks', 'kill', '-s', 'SIGTERM', 'p1']);
    await waitFor('pause to stop', async () => /p1\s+\d+\s+STOPPED/.test(await ctr(containerd.address, ['-n', ns, 'tasks', 'ls'])), {
      timeoutMs: 10_000,
    });
    const del = await run('ctr', ['--address', containerd.address, '-n', ns, 'tasks', 'delete', 'p1']);
    expect(del.stdout + del.stderr).not.toMatch(/exit status [1-9]/);
    await ctr(containerd.address, ['-n', ns, 'containers', 'delete', 'p1']);
  });

  test('stop() leaves no process, mount, netns, bridge or tmp dir behind', async () => {
    const harness = h as Harness;
    const { containerd, images, tmpDir, cni } = harness;
    // leave a running container, so stop() has shims, mounts and cgroups to clean
    await ctr(containerd.address, ['-n', ns, 'run', '-d', ...runFlags(), images.busybox, 'left-running', 'sleep', '3600']);
    // and a named netns with this harness's prefix
    await run('ip', ['netns', 'add', `${cni.netnsPrefix}smoke`]);

    await harness.stop();

    const leftovers = listProcesses().filter((p) => p.argv.some((a) => a.includes(tmpDir) || a === containerd.address));
    expect(leftovers.map((p) => p.argv.join(' '))).toEqual([]);
    expect(mountsUnder(tmpDir)).toEqual([]);
    expect(fs.existsSync(tmpDir)).toBe(false);
    expect(fs.existsSync(`/run/netns/${cni.netnsPrefix}smoke`)).toBe(false);
    const links = (await run('ip', ['-o', 'link', 'show'])).stdout;
    expect(links).not.toContain(`${cni.bridge}:`);
    const fwd = (await run('iptables', ['-w', '-S', 'FORWARD'])).stdout;
    expect(fwd).not.toContain(cni.bridge);
    expect(fs.existsSync(`/sys/fs/cgroup/memory/${ns}/left-running`)).toBe(false);
  });
});
