import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, helpText, listSettings, loadConfig } from '../../../src/config/load';
import { envName, flagName } from '../../../src/config/naming';

const tempDirs: string[] = [];
afterAll(() => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempFile(content: unknown): string {
  const dir = mkdtempSync('/tmp/cri-adapter-cfg-');
  tempDirs.push(dir);
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(content));
  return file;
}

describe('setting names', () => {
  it('derives flag and environment names from the key by one rule', () => {
    expect(flagName('registry.configPath')).toBe('registry-config-path');
    expect(envName('registry.configPath')).toBe('CRI_ADAPTER_REGISTRY_CONFIG_PATH');
    expect(flagName('containerd.address')).toBe('containerd-address');
    expect(envName('logLevel')).toBe('CRI_ADAPTER_LOG_LEVEL');
  });
});

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const cfg = loadConfig([], {});
    expect(cfg.listen).toBe('/run/cri-adapter/cri-adapter.sock');
    expect(cfg.containerd.address).toBe('/run/containerd/containerd.sock');
    expect(cfg.containerd.namespace).toBe('cri-adapter');
    expect(cfg.root).toBe('/var/lib/cri-adapter');
    expect(cfg.state).toBe('/run/cri-adapter');
    expect(cfg.runtimes).toEqual({ runc: { type: 'io.containerd.runc.v2' } });
    expect(cfg.defaultRuntime).toBe('runc');
  });

  it('applies file < environment < flags', () => {
    const file = tempFile({ containerd: { address: '/file.sock', namespace: 'from-file' }, logLevel: 'warn', root: '/file-root' });
    const cfg = loadConfig(['--config', file, '--containerd-address', '/flag.sock'], {
      CRI_ADAPTER_CONTAINERD_ADDRESS: '/env.sock',
      CRI_ADAPTER_LOG_LEVEL: 'debug',
    });
    expect(cfg.containerd.address).toBe('/flag.sock');
    expect(cfg.logLevel).toBe('debug');
    expect(cfg.containerd.namespace).toBe('from-file');
    expect(cfg.root).toBe('/file-root');
  });

  it('reads the runtime handler map from the environment as JSON', () => {
    const cfg = loadConfig([], {
      CRI_ADAPTER_RUNTIMES: JSON.stringify({ runc: { type: 'io.containerd.runc.v2', root: '/run/x', systemdCgroup: true } }),
    });
    expect(cfg.runtimes.runc).toEqual({ type: 'io.containerd.runc.v2', root: '/run/x', systemdCgroup: true });
  });

  it.each([
    [['--log-level', 'loud'], /logLevel/],
    [['--bogus-flag', 'x'], /--bogus-flag/],
    [['--listen', 'relative.sock'], /listen/],
    [['--default-runtime', 'kata'], /defaultRuntime/],
    [['--containerd-namespace', 'k8s.io'], /k8s\.io/],
    [['--runtimes', '{"runc":{"type":"io.containerd.runc.v2","bogus":1}}'], /bogus/],
  ])('refuses %j naming the setting', (argv, pattern) => {
    expect(() => loadConfig(argv as string[], {})).toThrow(ConfigError);
    expect(() => loadConfig(argv as string[], {})).toThrow(pattern);
  });

  it('refuses an unknown key in the file, naming it', () => {
    const file = tempFile({ containerd: { adress: '/x.sock' } });
    expect(() => loadConfig(['--config', file], {})).toThrow(/containerd\.adress/);
  });

  it('allows the shared k8s.io namespace only when asked explicitly', () => {
    const cfg = loadConfig(['--containerd-namespace', 'k8s.io', '--containerd-allow-shared-namespace'], {});
    expect(cfg.containerd.namespace).toBe('k8s.io');
  });

  it('lists every setting in --help with its flag, variable and default', () => {
    const text = helpText();
    for (const s of listSettings()) {
      expect(text).toContain(`--${flagName(s.key)}`);
      expect(text).toContain(envName(s.key));
    }
    expect(text).toContain('"/run/cri-adapter/cri-adapter.sock"');
  });

  it('loads deploy/config.example.json as it ships', () => {
    const cfg = loadConfig(['--config', path.join(__dirname, '../../../deploy/config.example.json')], {});
    expect(cfg.logging.maxBytesPerTurn).toBe(65536);
    expect(cfg.registry.configPath).toBe('/etc/cri-adapter/certs.d');
    expect(cfg.runtimes.runc).toEqual({ type: 'io.containerd.runc.v2', root: '/run/cri-adapter/runc' });
  });

  it('takes runtime handlers from a file, added to the default runc handler, and checks them', () => {
    const cfg = loadConfig(['--config', tempFile({ runtimes: { fast: { type: 'io.containerd.runc.v2', root: '/run/fast' } } })], {});
    expect(cfg.runtimes).toEqual({ runc: { type: 'io.containerd.runc.v2' }, fast: { type: 'io.containerd.runc.v2', root: '/run/fast' } });
    expect(() => loadConfig(['--config', tempFile({ runtimes: { fast: { type: 'x', color: 'red' } } })], {})).toThrow(/runtimes\.fast\.color/);
    expect(() => loadConfig(['--config', tempFile({ runtimes: [] })], {})).toThrow(/runtimes/);
  });

  it('refuses a log turn budget or line size of zero, naming the key', () => {
    expect(() => loadConfig(['--logging-max-bytes-per-turn', '0'], {})).toThrow(/logging\.maxBytesPerTurn/);
    expect(() => loadConfig([], { CRI_ADAPTER_LOGGING_MAX_LINE_BYTES: '0' })).toThrow(/logging\.maxLineBytes/);
  });
});
