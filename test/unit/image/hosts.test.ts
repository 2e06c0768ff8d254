import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { FailedPreconditionError, InvalidArgumentError } from '../../../src/errors';
import {
  defaultUpstream,
  hostDirCandidates,
  loadEndpoints,
  loadHostsConfig,
  parseHostsToml,
  RegistryEndpoint,
} from '../../../src/image/registry/hosts';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'hosts-test-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function write(registryDir: string, text: string, file = 'hosts.toml'): string {
  const dir = path.join(root, registryDir);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, file), text);
  return dir;
}

function summary(eps: RegistryEndpoint[]) {
  return eps.map((e) => ({
    url: `${e.baseUrl}${e.pathPrefix}`,
    caps: [...e.capabilities].sort().join(','),
    mirror: e.mirror,
  }));
}

describe('defaults', () => {
  test('no config dir: the registry over https, docker.io via registry-1.docker.io', async () => {
    expect(summary(await loadEndpoints(undefined, 'docker.io'))).toEqual([
      { url: 'https://registry-1.docker.io/v2', caps: 'pull,push,resolve', mirror: false },
    ]);
    expect(summary(await loadEndpoints(undefined, 'quay.io'))).toEqual([
      { url: 'https://quay.io/v2', caps: 'pull,push,resolve', mirror: false },
    ]);
    // Even localhost stays https unless a file says http://.
    expect((await loadEndpoints(undefined, 'localhost:5000'))[0].baseUrl).toBe('https://localhost:5000');
  });

  test('config dir without a matching directory: default upstream', async () => {
    write('quay.io', 'server = "https://quay.example"');
    const eps = await loadEndpoints(root, 'ghcr.io');
    expect(summary(eps)).toEqual([{ url: 'https://ghcr.io/v2', caps: 'pull,push,resolve', mirror: false }]);
  });

  test('missing config dir is treated as empty', async () => {
    const eps = await loadEndpoints(path.join(root, 'does-not-exist'), 'docker.io');
    expect(eps[0].baseUrl).toBe('https://registry-1.docker.io');
  });

  test('defaultUpstream has no TLS extras', () => {
    expect(defaultUpstream('r.example').tls).toEqual({ skipVerify: false, caFiles: [], clientCertificates: [] });
  });
});

describe('hosts.toml', () => {
  test('mirrors in file order, then the server, with capabilities', async () => {
    write(
      'docker.io',
      `
server = "https://registry-1.docker.io"

[host."https://mirror-b.example"]
  capabilities = ["pull", "resolve"]

[host."http://10.0.0.5:5000"]
  capabilities = ["pull"]

[host."mirror-a.example"]
`,
    );
    const eps = await loadEndpoints(root, 'docker.io');
    expect(summary(eps)).toEqual([
      { url: 'https://mirror-b.example/v2', caps: 'pull,resolve', mirror: true },
      { url: 'http://10.0.0.5:5000/v2', caps: 'pull', mirror: true },
      { url: 'https://mirror-a.example/v2', caps: 'pull,push,resolve', mirror: true },
      { url: 'https://registry-1.docker.io/v2', caps: 'pull,push,resolve', mirror: false },
    ]);
    expect(eps.map((e) => e.scheme)).toEqual(['https', 'http', 'https', 'https']);
    expect(eps.every((e) => e.registry === 'docker.io')).toBe(true);
    expect(eps[0].source).toBe(path.join(root, 'docker.io', 'hosts.toml'));
  });

  test('no server key: the default upstream is appended; docker.io server maps to registry-1', async () => {
    write('docker.io', '[host."https://m.example"]\n');
    expect(summary(await loadEndpoints(root, 'docker.io')).map((e) => e.url)).toEqual([
      'https://m.example/v2',
      'https://registry-1.docker.io/v2',
    ]);
    write('docker.io', 'server = "https://docker.io"\n');
    expect((await loadEndpoints(root, 'docker.io'))[0].host).toBe('registry-1.docker.io');
  });

  test('host directory with a port, and the host_port_ spelling first', async () => {
    write('127.0.0.1:5000', 'server = "http://127.0.0.1:5000"');
    expect(summary(await loadEndpoints(root, '127.0.0.1:5000'))).toEqual([
      { url: 'http://127.0.0.1:5000/v2', caps: 'pull,push,resolve', mirror: false },
    ]);
    write('127.0.0.1_5000_', 'server = "http://127.0.0.1:6000"');
    expect((await loadEndpoints(root, '127.0.0.1:5000'))[0].host).toBe('127.0.0.1:6000');
    expect(hostDirCandidates('/c', 'r.example:443')).toEqual(['/c/r.example_443_', '/c/r.example:443', '/c/_default']);
    expect(hostDirCandidates('/c', 'r.example')).toEqual(['/c/r.example', '/c/_default']);
  });

  test('_default applies to any registry without its own directory', async () => {
    write('_default', '[host."https://catch-all.example"]\n  capabilities = ["pull"]\n');
    write('quay.io', 'server = "https://quay.io"');
    expect(summary(await loadEndpoints(root, 'ghcr.io'))).toEqual([
      { url: 'https://catch-all.example/v2', caps: 'pull', mirror: true },
      { url: 'https://ghcr.io/v2', caps: 'pull,push,resolve', mirror: false },
    ]);
    expect(summary(await loadEndpoints(root, 'quay.io')).map((e) => e.url)).toEqual(['https://quay.io/v2']);
  });

  test('paths: /v2 appended, kept when present, verbatim with override_path', () => {
    const eps = parseHostsToml(
      `
server = "https://r.example/base"
[host."https://a.example/proxy/"]
[host."https://b.example/x/v2"]
[host."https://c.example/custom/api"]
  override_path = true
[host."https://d.example"]
  override_path = true
`,
      { registry: 'r.example', baseDir: '/etc/certs.d/r.example' },
    ).endpoints;
    expect(eps.map((e) => `${e.baseUrl}|${e.pathPrefix}`)).toEqual([
      'https://a.example|/proxy/v2',
      'https://b.example|/x/v2',
      'https://c.example|/custom/api',
      'https://d.example|',
      'https://r.example|/base/v2',
    ]);
  });

  test('TLS: skip_verify, ca string or list (relative to the host dir), client in all three shapes', () => {
    const base = '/etc/containerd/certs.d/r.example';
    const eps = parseHostsToml(
      `
server = "https://r.example"
ca = "root.pem"
skip_verify = false

[host."https://m1.example"]
  skip_verify = true
  ca = ["/abs/ca1.pem", "rel/ca2.pem"]
  client = "combined.pem"

[host."https://m2.example"]
  client = ["one.pem", "/abs/two.pem"]

[host."https://m3.example"]
  client = [["c.cert", "c.key"], ["/abs/d.pem", ""]]
`,
      { registry: 'r.example', baseDir: base },
    ).endpoints;
    expect(eps[0].tls).toEqual({
      skipVerify: true,
      caFiles: ['/abs/ca1.pem', `${base}/rel/ca2.pem`],
      clientCertificates: [{ certFile: `${base}/combined.pem` }],
    });
    expect(eps[1].tls.clientCertificates).toEqual([{ certFile: `${base}/one.pem` }, { certFile: '/abs/two.pem' }]);
    expect(eps[2].tls.clientCertificates).toEqual([
      { certFile: `${base}/c.cert`, keyFile: `${base}/c.key` },
      { certFile: '/abs/d.pem' },
    ]);
    expect(eps[3].tls).toEqual({ skipVerify: false, caFiles: [`${base}/root.pem`], clientCertificates: [] });
    expect(eps[3].mirror).toBe(false);
  });

  test('headers: string or list', () => {
    const eps = parseHostsToml(
      `
[host."https://m.example"]
  [host."https://m.example".header]
    x-one = "1"
    X-Many = ["a", "b"]
`,
      { registry: 'r.example', baseDir: '/x' },
    ).endpoints;
    expect(eps[0].headers).toEqual({ 'x-one': ['1'], 'X-Many': ['a', 'b'] });
    expect(eps[1].headers).toEqual({});
  });

  test('unknown keys are reported, not fatal', () => {
    const cfg = parseHostsToml('capabilites = ["pull"]\n[host."https://m.example"]\n  skipverify = true\n', {
      registry: 'r.example',
      baseDir: '/x',
    });
    expect(cfg.warnings).toHaveLength(2);
    expect(cfg.warnings[0]).toMatch(/unknown key "capabilites"/);
    expect(cfg.warnings[1]).toMatch(/unknown key "skipverify" in \[host."https:\/\/m.example"\]/);
  });

  const invalid: [string, string, RegExp][] = [
    ['bad TOML', 'server = ', /not valid TOML/],
    ['unknown capability', '[host."https://m"]\n capabilities = ["pull", "fetch"]', /unknown capability "fetch"/],
    ['capabilities type', 'capabilities = 3', /capabilities in top level must be a string or a list/],
    ['skip_verify type', '[host."https://m"]\n skip_verify = "yes"', /skip_verify in \[host."https:\/\/m"\] must be true or false/],
    ['ca type', 'ca = [1, 2]', /ca in top level must be/],
    ['client pair shape', 'client = [["a", "b", "c"]]', /client in top level must be a path/],
    ['header type', '[host."https://m".header]\n x = 1', /header "x"/],
    ['server type', 'server = 5', /server must be a string/],
    ['credentials in URL', 'server = "https://u:p@r.example"', /must not carry credentials/],
    ['bad URL', '[host."https://exa mple"]', /not a valid URL/],
  ];
  test.each(invalid)('%s is a FailedPrecondition naming file and registry', async (_name, text, reason) => {
    write('r.example', text);
    const err = await loadEndpoints(root, 'r.example').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toMatch(reason);
    expect((err as Error).message).toContain(path.join(root, 'r.example', 'hosts.toml'));
    expect((err as Error).message).toContain('(for r.example)');
  });

  test('a registry name that would escape the config dir is refused', async () => {
    await expect(loadEndpoints(root, '../etc')).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe('Docker certs.d layout without hosts.toml', () => {
  test('*.crt are CAs, *.cert/*.key pairs are client certificates', async () => {
    const dir = write('r.example:8443', 'x', 'ca.crt');
    writeFileSync(path.join(dir, 'client.cert'), 'x');
    writeFileSync(path.join(dir, 'client.key'), 'x');
    writeFileSync(path.join(dir, 'lonely.cert'), 'x');
    const cfg = await loadHostsConfig(root, 'r.example:8443');
    expect(cfg.endpoints).toHaveLength(1);
    const ep = cfg.endpoints[0];
    expect(ep.baseUrl).toBe('https://r.example:8443');
    expect(ep.tls.caFiles).toEqual([path.join(dir, 'ca.crt')]);
    expect(ep.tls.clientCertificates).toEqual([{ certFile: path.join(dir, 'client.cert'), keyFile: path.join(dir, 'client.key') }]);
    expect(cfg.warnings.join('\n')).toMatch(/lonely.cert/);
  });
});
