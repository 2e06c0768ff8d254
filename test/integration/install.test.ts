/**
 * deploy/install.sh into a staging root (DESTDIR, PREFIX), as a package
 * build or an image build would run it: the installed tree holds production
 * dependencies only, the unit passes `systemd-analyze verify`, the installed
 * daemon starts from there against the harness's containerd and answers
 * Version and doctor, and deploy/uninstall.sh takes it all away again.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadHarnessEnv } from '../harness/env';
import { FatalWaitError, waitFor } from '../harness/util';
import { daemonNodeFlags, nodeSettings } from '../support/adapter-process';
import { criClient } from '../support/cri-client';

const execFileP = promisify(execFile);
const h = loadHarnessEnv();
const REPO = path.resolve(__dirname, '..', '..');
const PREFIX = '/opt/cri-adapter-test';

let root: string;
const app = () => path.join(root, PREFIX, 'lib', 'cri-adapter');

beforeAll(async () => {
  root = mkdtempSync(path.join(h.tmpDir, 'install-root-'));
  await execFileP(path.join(REPO, 'deploy', 'install.sh'), [], { env: { ...process.env, DESTDIR: root, PREFIX }, timeout: 240_000 });
}, 300_000);

it('installs the program with production dependencies only, a wrapper, the unit and config files', () => {
  expect(existsSync(path.join(app(), 'dist', 'src', 'main.js'))).toBe(true);
  expect(existsSync(path.join(app(), 'dist', 'test'))).toBe(false);
  for (const dep of ['@grpc/grpc-js', 'prom-client', 'winston', 'convict', 'yaml']) {
    expect(existsSync(path.join(app(), 'node_modules', dep, 'package.json'))).toBe(true);
  }
  for (const dev of ['jest', 'typescript', 'ts-proto', '@bufbuild/buf']) {
    expect(existsSync(path.join(app(), 'node_modules', dev))).toBe(false);
  }
  const wrapper = readFileSync(path.join(root, PREFIX, 'bin', 'cri-adapter'), 'utf8');
  expect(wrapper).toContain(`${PREFIX}/lib/cri-adapter/dist/src/main.js`);
  // The daemon's Node flags from main.js's first line.
  expect(daemonNodeFlags().length).toBeGreaterThan(0);
  expect(wrapper).toContain(` ${daemonNodeFlags().join(' ')} `);
  const unit = readFileSync(path.join(root, 'etc/systemd/system/cri-adapter.service'), 'utf8');
  expect(unit).toMatch(new RegExp(`^ExecStart=${PREFIX}/bin/cri-adapter --config /etc/cri-adapter/config.json$`, 'm'));
  expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  const config = JSON.parse(readFileSync(path.join(root, 'etc/cri-adapter/config.json'), 'utf8')) as { metrics: { address: string } };
  expect(config.metrics.address).toBe('127.0.0.1:9796');
  expect(readFileSync(path.join(root, 'etc/crictl.yaml'), 'utf8')).toMatch(/^runtime-endpoint: unix:\/\/\/run\/cri-adapter\/cri-adapter\.sock$/m);
});

// systemd-analyze ships with Debian's systemd package even where systemd is not PID 1 (as in these VMs).
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).error === undefined;
(hasAnalyze ? it : it.skip)('installs a unit that systemd-analyze verify accepts', () => {
  // The unit names its program by its final path; point it at the staged copy for the check.
  const dir = mkdtempSync(path.join(h.tmpDir, 'unit-verify-'));
  const unit = readFileSync(path.join(root, 'etc/systemd/system/cri-adapter.service'), 'utf8').replace(
    `${PREFIX}/bin/cri-adapter`,
    path.join(root, PREFIX, 'bin', 'cri-adapter'),
  );
  writeFileSync(path.join(dir, 'cri-adapter.service'), unit);
  // verify also loads the units this one requires; a node without containerd's unit gets a stand-in.
  if (!existsSync('/lib/systemd/system/containerd.service') && !existsSync('/etc/systemd/system/containerd.service')) {
    writeFileSync(path.join(dir, 'containerd.service'), '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n');
  }
  const r = spawnSync('systemd-analyze', ['verify', path.join(dir, 'cri-adapter.service')], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  // And a broken unit is refused, so the check can fail.
  writeFileSync(path.join(dir, 'broken.service'), unit.replace('ExecStart=', 'ExecStrat='));
  const bad = spawnSync('systemd-analyze', ['verify', path.join(dir, 'broken.service')], { encoding: 'utf8' });
  expect(bad.status).not.toBe(0);
});

it('runs from the installed tree against containerd and answers Version and doctor', async () => {
  const dir = mkdtempSync(path.join(h.tmpDir, 'installed-run-'));
  const socket = path.join(dir, 'cri.sock');
  const settings = [
    ...nodeSettings({ dir, containerdAddress: h.containerd.address, namespace: 'cri-adapter-it-install', cniConfDir: h.cni.confDir }),
    '--registry-config-path', h.registry.configPath,
  ];
  const main = path.join(app(), 'dist', 'src', 'main.js');
  // The installed tree alone: no access to the repository's node_modules.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_PATH: '' };
  const doctor = spawnSync(process.execPath, [main, 'doctor', ...settings], { encoding: 'utf8', env, cwd: dir });
  expect(doctor.stdout).toMatch(/^OK {4}containerd /m);
  const daemon = spawn(process.execPath, [main, ...settings], { stdio: ['ignore', 'ignore', 'pipe'], env, cwd: dir });
  let stderr = '';
  daemon.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const client = criClient(socket, 2000);
  try {
    const v = await waitFor(
      'the installed daemon to answer Version',
      () => {
        if (daemon.exitCode !== null) throw new FatalWaitError(`installed daemon exited ${daemon.exitCode}:\n${stderr}`);
        return client.runtime.version({ version: '' });
      },
      { onTimeout: () => stderr },
    );
    expect(v.runtimeName).toBe('cri-adapter');
    expect(v.runtimeApiVersion).toBe('v1');
  } finally {
    client.close();
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
});

it('keeps an edited config on reinstall, and uninstall removes the program but keeps config unless --purge', async () => {
  const configPath = path.join(root, 'etc/cri-adapter/config.json');
  writeFileSync(configPath, '{"logLevel":"debug"}\n');
  await execFileP(path.join(REPO, 'deploy', 'install.sh'), [], { env: { ...process.env, DESTDIR: root, PREFIX }, timeout: 240_000 });
  expect(readFileSync(configPath, 'utf8')).toBe('{"logLevel":"debug"}\n');
  expect(existsSync(`${configPath}.new`)).toBe(true);

  await execFileP(path.join(REPO, 'deploy', 'uninstall.sh'), [], { env: { ...process.env, DESTDIR: root, PREFIX } });
  expect(existsSync(app())).toBe(false);
  expect(existsSync(path.join(root, PREFIX, 'bin', 'cri-adapter'))).toBe(false);
  expect(existsSync(path.join(root, 'etc/systemd/system/cri-adapter.service'))).toBe(false);
  expect(existsSync(configPath)).toBe(true);
  await execFileP(path.join(REPO, 'deploy', 'uninstall.sh'), ['--purge'], { env: { ...process.env, DESTDIR: root, PREFIX } });
  expect(existsSync(path.join(root, 'etc/cri-adapter'))).toBe(false);
  expect(existsSync(path.join(root, 'etc/crictl.yaml'))).toBe(false);
}, 300_000);
