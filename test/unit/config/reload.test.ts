import { loadConfig, listSettings } from '../../../src/config/load';
import { planReload, RELOADABLE_KEYS } from '../../../src/config/reload';
import { isLoopbackHost, parseHostPort } from '../../../src/util/host-port';

describe('planReload', () => {
  const current = () => loadConfig([], {});

  it('finds nothing to do when nothing changed', () => {
    expect(planReload(current(), current())).toEqual({ apply: [], refuse: [] });
  });

  it('applies reloadable keys and refuses the rest, in schema order', () => {
    const next = loadConfig(
      ['--log-level', 'debug', '--snapshotter', 'native', '--cni-bin-dirs', '/a,/b', '--metrics-address', '127.0.0.1:9796', '--listen', '/tmp/x.sock'],
      {},
    );
    const plan = planReload(current(), next);
    expect(plan.apply.sort()).toEqual(['cni.binDirs', 'logLevel', 'metrics.address']);
    expect(plan.refuse.sort()).toEqual(['listen', 'snapshotter']);
  });

  it('names only keys the schema has', () => {
    const keys = new Set(listSettings().map((s) => s.key));
    for (const k of RELOADABLE_KEYS) expect(keys.has(k)).toBe(true);
  });
});

describe('metrics.address', () => {
  it('is off by default and takes host:port only', () => {
    expect(loadConfig([], {}).metrics.address).toBe('');
    expect(loadConfig(['--metrics-address', '[::1]:9796'], {}).metrics.address).toBe('[::1]:9796');
    expect(() => loadConfig(['--metrics-address', 'localhost'], {})).toThrow(/metrics\.address/);
    expect(() => loadConfig(['--metrics-address', '127.0.0.1:70000'], {})).toThrow(/metrics\.address/);
  });

  it('splits and classifies addresses', () => {
    expect(parseHostPort('127.0.0.1:9796')).toEqual({ host: '127.0.0.1', port: 9796 });
    expect(parseHostPort('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseHostPort('::1:80')).toBeUndefined();
    expect(isLoopbackHost('127.0.0.53')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
  });
});
