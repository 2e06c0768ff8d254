/**
 * `cri-adapter doctor` against the harness's working node setup (nothing
 * fails) and against broken ones, each broken in one way: containerd down,
 * a CNI plugin missing, a bad hosts.toml, the socket held by another
 * process, the socket directory not creatable, the kubelet on another
 * cgroup driver. Each must fail exactly that check, with exit code 1.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { CheckResult } from '../../src/doctor';
import { loadHarnessEnv } from '../harness/env';
import { nodeSettings } from '../support/adapter-process';

const h = loadHarnessEnv();
const MAIN = path.resolve(__dirname, '..', '..', 'dist', 'src', 'main.js');

interface Run {
  code: number | null;
  stdout: string;
  checks: CheckResult[];
}

/**
 * Runs doctor on the harness's settings; `overrides` replace some of them
 * (a repeated flag would become a list), `extra` adds doctor's own flags.
 */
function doctor(overrides: Record<string, string> = {}, extra: string[] = [], opts: { json?: boolean } = {}): Promise<Run> {
  const dir = mkdtempSync(path.join(h.tmpDir, 'doctor-'));
  const settings = [
    ...nodeSettings({ dir, containerdAddress: h.containerd.address, namespace: 'cri-adapter-it-doctor', cniConfDir: h.cni.confDir }),
    '--cni-bin-dirs', h.cni.binDir,
    '--registry-config-path', h.registry.configPath,
  ];
  for (const [flag, value] of Object.entries(overrides)) {
    const i = settings.indexOf(flag);
    if (i >= 0) settings[i + 1] = value;
    else settings.push(flag, value);
  }
  const args = [MAIN, 'doctor', ...(opts.json === false ? [] : ['--json']), ...extra, ...settings];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      let checks: CheckResult[] = [];
      if (opts.json !== false) {
        try {
          checks = (JSON.parse(stdout) as { checks: CheckResult[] }).checks;
        } catch {
          reject(new Error(`doctor printed no JSON (exit ${code}):\n${stdout}\n${stderr}`));
          return;
        }
      }
      resolve({ code, stdout, checks });
    });
  });
}

const failed = (r: Run) => r.checks.filter((c) => c.status === 'FAIL').map((c) => c.check);
const find = (r: Run, check: string) => r.checks.find((c) => c.check === check)!;

function tmp(name: string): string {
  return mkdtempSync(path.join(h.tmpDir, `doctor-${name}-`));
}

function kubeletConfig(driver: string): string {
  const file = path.join(tmp('kubelet'), 'config.yaml');
  writeFileSync(file, `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: ${driver}\n`);
  return file;
}

it('passes on the harness node, with the kubelet on the same cgroup driver', async () => {
  const r = await doctor({}, ['--kubelet-config', kubeletConfig('cgroupfs')]);
  expect(failed(r)).toEqual([]);
  expect(r.code).toBe(0);
  expect(find(r, 'containerd').message).toMatch(/answers, version 1\.6/);
  expect(find(r, 'snapshotter').status).toBe('OK');
  expect(find(r, 'runtime runc').message).toMatch(/containerd-shim-runc-v2 and .*runc found/);
  expect(find(r, 'cni').message).toContain(h.cni.networkName);
  expect(find(r, 'kubelet cgroup driver').message).toMatch(/both use cgroupfs/);
  expect(find(r, 'cri socket').message).toMatch(/is free/);
  expect(find(r, 'streaming').status).toBe('OK');
  // The harness's hosts.toml directory (_default pointing at the local registry) parses.
  expect(r.checks.filter((c) => c.check.startsWith('registry ')).every((c) => c.status === 'OK')).toBe(true);
  for (const c of ['seccomp', 'lsm', 'capabilities', 'space root', 'space state', 'space images']) expect(find(r, c)).toBeDefined();
  // This machine's root lacks CAP_SYS_RESOURCE (field notes): said, as a warning, not a failure.
  expect(find(r, 'capabilities').message).toMatch(/lack CAP_SYS_RESOURCE|every capability/);
});

it('prints one line per check with its status in text mode', async () => {
  const r = await doctor({}, [], { json: false });
  expect(r.code).toBe(0);
  const lines = r.stdout.trim().split('\n');
  const checkLines = lines.slice(0, lines.indexOf(''));
  expect(checkLines.length).toBeGreaterThan(10);
  for (const l of checkLines) expect(l).toMatch(/^(OK  |WARN|FAIL)  \S/);
  expect(lines[lines.length - 1]).toMatch(/^no failures, \d+ warning\(s\)$/);
});

it('fails when containerd is down', async () => {
  // A socket file nobody listens on, as a stopped containerd leaves it.
  const dead = path.join(tmp('dead'), 'containerd.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(dead, resolve));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  writeFileSync(dead, '');
  const down = await doctor({ '--containerd-address': dead });
  expect(failed(down)).toEqual(['containerd']);
  expect(down.code).toBe(1);
  expect(find(down, 'containerd').message).toContain('does not answer');
  const missing = await doctor({ '--containerd-address': path.join(tmp('none'), 'containerd.sock') });
  expect(failed(missing)).toEqual(['containerd']);
  expect(find(missing, 'containerd').message).toContain('no socket at');
  expect(find(missing, 'containerd').fix).toMatch(/start containerd/);
});

it('fails when a plugin of the CNI network is missing', async () => {
  const dir = tmp('cni');
  writeFileSync(
    path.join(dir, '10-net.conflist'),
    JSON.stringify({ cniVersion: '1.0.0', name: 'needs-more', plugins: [{ type: 'bridge', bridge: 'x' }, { type: 'no-such-plugin' }] }),
  );
  const r = await doctor({ '--cni-conf-dir': dir });
  expect(failed(r)).toEqual(['cni']);
  expect(r.code).toBe(1);
  expect(find(r, 'cni').message).toMatch(/needs-more.*no-such-plugin/);
  expect(find(r, 'cni').message).not.toMatch(/bridge$/);
});

it('fails on a hosts.toml that does not parse', async () => {
  const dir = tmp('hosts');
  mkdirSync(path.join(dir, 'registry.example.com'));
  writeFileSync(path.join(dir, 'registry.example.com', 'hosts.toml'), 'server = "https://registry.example.com"\n[host."https://mirror\n');
  const r = await doctor({ '--registry-config-path': dir });
  expect(failed(r)).toEqual(['registry registry.example.com']);
  expect(r.code).toBe(1);
  expect(find(r, 'registry registry.example.com').fix).toContain(path.join(dir, 'registry.example.com', 'hosts.toml'));
});

it('fails when another process holds the CRI socket', async () => {
  const sock = path.join(tmp('held'), 'cri.sock');
  const server = net.createServer((c) => c.destroy());
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  try {
    const r = await doctor({ '--listen': sock });
    expect(failed(r)).toEqual(['cri socket']);
    expect(r.code).toBe(1);
    expect(find(r, 'cri socket').message).toContain('another process serves');
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

it('fails when the socket directory cannot be made (a file is in the way)', async () => {
  const file = path.join(tmp('notdir'), 'run');
  writeFileSync(file, '');
  const r = await doctor({ '--listen': path.join(file, 'cri-adapter', 'cri.sock') });
  expect(failed(r)).toEqual(['cri socket']);
  expect(r.code).toBe(1);
  expect(find(r, 'cri socket').message).toContain('is not a directory');
});

it('fails when the kubelet uses another cgroup driver', async () => {
  const r = await doctor({}, ['--kubelet-config', kubeletConfig('systemd')]);
  expect(failed(r)).toEqual(['kubelet cgroup driver']);
  expect(r.code).toBe(1);
  expect(find(r, 'kubelet cgroup driver').message).toMatch(/kubelet .* uses systemd, the adapter cgroupfs/);
});

it('fails on an invalid configuration, naming the key', async () => {
  const r = await doctor({ '--metrics-address': 'not-an-address' });
  expect(failed(r)).toEqual(['config']);
  expect(r.code).toBe(1);
  expect(find(r, 'config').message).toContain('metrics.address');
});

