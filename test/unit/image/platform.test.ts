import { endianness } from 'os';
import { nodePlatform, normalizePlatform, platformRank, selectPlatform } from '../../../src/image/registry/platform';
import type { Descriptor, Platform } from '../../../src/image/registry/types';

const p = (architecture: string, variant?: string, os = 'linux'): Platform => (variant ? { os, architecture, variant } : { os, architecture });
const desc = (n: number, platform?: Platform, annotations?: Record<string, string>): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${String(n).padStart(64, '0')}`,
  size: n,
  ...(platform ? { platform } : {}),
  ...(annotations ? { annotations } : {}),
});

describe('platformRank', () => {
  const table: [Platform, Platform, number | undefined][] = [
    [p('arm64', 'v8'), p('arm64', 'v8'), 0],
    [p('arm64', 'v8'), p('arm64'), 1],
    [p('arm64'), p('arm64'), 0],
    [p('arm64'), p('arm64', 'v8'), 0],
    [p('arm64', 'v8'), p('arm64', 'v9'), undefined],
    [p('amd64'), p('amd64'), 0],
    [p('amd64'), p('amd64', 'v1'), 0],
    [p('amd64'), p('amd64', 'v3'), undefined],
    [p('amd64'), p('x86_64'), 0],
    [p('arm64', 'v8'), p('aarch64'), 1],
    [p('arm', 'v7'), p('arm', 'v7'), 0],
    [p('arm', 'v7'), p('arm'), 1],
    [p('arm', 'v7'), p('arm', 'v6'), 2],
    [p('arm', 'v7'), p('arm', 'v5'), 3],
    [p('arm', 'v6'), p('arm', 'v7'), undefined],
    [p('amd64'), p('arm64'), undefined],
    [p('amd64'), p('amd64', undefined, 'windows'), undefined],
    [p('amd64'), p('AMD64', undefined, 'Linux'), 0],
  ];
  test.each(table)('want %j, candidate %j -> %s', (want, cand, rank) => {
    expect(platformRank(want, cand)).toBe(rank);
  });
});

describe('selectPlatform', () => {
  test('exact variant beats a missing variant, wherever it is listed', () => {
    const list = [desc(1, p('amd64')), desc(2, p('arm64')), desc(3, p('arm64', 'v8'))];
    expect(selectPlatform(list, p('arm64', 'v8')).descriptor?.size).toBe(3);
    expect(selectPlatform(list.slice(0, 2), p('arm64', 'v8')).descriptor?.size).toBe(2);
  });

  test('ties go to the earlier entry', () => {
    expect(selectPlatform([desc(1, p('amd64')), desc(2, p('amd64'))], p('amd64')).descriptor?.size).toBe(1);
  });

  test('attestations are neither chosen nor listed; platform-less entries are a last resort', () => {
    const att = desc(9, p('unknown', undefined, 'unknown'), { 'vnd.docker.reference.type': 'attestation-manifest' });
    const r = selectPlatform([att, desc(1, p('s390x'))], p('amd64'));
    expect(r.descriptor).toBeUndefined();
    expect(r.available).toEqual(['linux/s390x']);
    const withBare = selectPlatform([desc(5), desc(1, p('s390x'))], p('s390x'));
    expect(withBare.descriptor?.size).toBe(1);
    expect(selectPlatform([desc(5), desc(1, p('s390x'))], p('amd64')).descriptor?.size).toBe(5);
  });
});

describe('nodePlatform', () => {
  test('maps Node arch names to Go names', () => {
    const expected: Record<string, Platform> = {
      x64: p('amd64'),
      arm64: p('arm64', 'v8'),
      ia32: p('386'),
      s390x: p('s390x'),
      ppc64: p(endianness() === 'LE' ? 'ppc64le' : 'ppc64'),
      riscv64: p('riscv64'),
    };
    const got = nodePlatform();
    expect(got.os).toBe('linux');
    if (expected[process.arch]) expect(got).toEqual(expected[process.arch]);
    else expect(got.architecture).not.toBe(process.arch === 'x64' ? 'x64' : '');
  });

  test('normalizePlatform folds aliases and baseline variants', () => {
    expect(normalizePlatform({ os: 'Linux', architecture: 'armhf' })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(normalizePlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }).variant).toBeUndefined();
  });
});
