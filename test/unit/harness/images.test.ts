/**
 * The harness's image builder (test/harness/images.ts) without any daemon:
 * deterministic digests, tars that GNU tar reads back, OCI config fields.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { buildImage, buildIndex, goPlatform, LayerEntry, MEDIA_TYPE, sha256, writeTar } from '../../harness/images';

const entries = (): LayerEntry[] => [
  { type: 'file', path: '/etc/hello', content: 'hi\n', mode: 0o640, uid: 1000, gid: 2000 },
  { type: 'dir', path: 'tmp', mode: 0o1777 },
  { type: 'dir', path: 'etc' },
  { type: 'symlink', path: 'bin/sh', target: 'busybox' },
  { type: 'hardlink', path: 'etc/hello2', target: 'etc/hello' },
  { type: 'file', path: `deep/${'d'.repeat(120)}/${'f'.repeat(60)}`, content: Buffer.from([1, 2, 3]) },
];

function tarList(tar: Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-tar-'));
  try {
    fs.writeFileSync(path.join(dir, 'l.tar'), tar);
    return execFileSync('tar', ['--numeric-owner', '-tvf', path.join(dir, 'l.tar')], { encoding: 'utf8' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('harness image builder', () => {
  test('tars are deterministic, sorted and readable by GNU tar', () => {
    const a = writeTar(entries());
    const b = writeTar(entries().reverse());
    expect(sha256(a)).toBe(sha256(b));
    const list = tarList(a);
    expect(list).toMatch(/^-rw-r----- 1000\/2000\s+3 1970-01-01 00:00 etc\/hello$/m);
    expect(list).toMatch(/^drwxrwxrwt 0\/0 .* tmp\/$/m);
    expect(list).toMatch(/^lrwxrwxrwx 0\/0 .* bin\/sh -> busybox$/m);
    expect(list).toMatch(/etc\/hello2 link to etc\/hello$/m);
    expect(list).toContain(`deep/${'d'.repeat(120)}/${'f'.repeat(60)}`);
    const names = list
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[5]);
    expect(names.indexOf('etc/')).toBeLessThan(names.indexOf('etc/hello'));
  });

  test('image config and manifest follow the OCI layout', () => {
    const img = buildImage({
      layers: [{ entries: entries() }],
      config: { cmd: ['sh'], entrypoint: ['/bin/x'], env: ['A=1'], user: '1:2', workingDir: '/w', stopSignal: 'SIGINT' },
    });
    const again = buildImage({
      layers: [{ entries: entries() }],
      config: { cmd: ['sh'], entrypoint: ['/bin/x'], env: ['A=1'], user: '1:2', workingDir: '/w', stopSignal: 'SIGINT' },
    });
    expect(img.manifest.digest).toBe(again.manifest.digest);
    const manifest = JSON.parse(img.manifest.data.toString());
    expect(manifest.mediaType).toBe(MEDIA_TYPE.manifest);
    expect(manifest.config.digest).toBe(img.config.digest);
    expect(manifest.layers[0]).toEqual({ mediaType: MEDIA_TYPE.layerGzip, digest: img.layers[0].digest, size: img.layers[0].size });
    const config = JSON.parse(img.config.data.toString());
    expect(config.architecture).toBe(goPlatform().architecture);
    expect(config.os).toBe('linux');
    expect(config.config).toEqual({ Cmd: ['sh'], Entrypoint: ['/bin/x'], Env: ['A=1'], User: '1:2', WorkingDir: '/w', StopSignal: 'SIGINT' });
    expect(config.rootfs.diff_ids).toEqual([sha256(zlib.gunzipSync(img.layers[0].data))]);
  });

  test('platform mapping and index', () => {
    expect(goPlatform('x64').architecture).toBe('amd64');
    expect(goPlatform('arm64').architecture).toBe('arm64');
    const amd = buildImage({ layers: [], config: { architecture: 'amd64' } });
    const arm = buildImage({ layers: [], config: { architecture: 'arm64', variant: 'v8' } });
    const index = JSON.parse(buildIndex([{ image: amd }, { image: arm }]).data.toString());
    expect(index.mediaType).toBe(MEDIA_TYPE.index);
    expect(index.manifests.map((m: { platform: unknown }) => m.platform)).toEqual([
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux', variant: 'v8' },
    ]);
  });
});
