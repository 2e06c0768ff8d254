import { InvalidArgumentError } from '../../../src/errors';
import {
  parseImageId,
  parseImageSpec,
  parseReference,
  withDigest,
  withTag,
} from '../../../src/image/reference';

const D256 = 'sha256:' + 'a1b2c3d4'.repeat(8);
const D512 = 'sha512:' + '0f'.repeat(64);

describe('parseReference normalisation', () => {
  // input, canonical string(), familiar(), domain, path, tag, digest
  const table: [string, string, string, string, string, string | undefined, string | undefined][] = [
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest', 'docker.io', 'library/busybox', 'latest', undefined],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36', 'docker.io', 'library/busybox', '1.36', undefined],
    ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest', 'docker.io', 'library/busybox', 'latest', undefined],
    ['docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox:latest', 'docker.io', 'library/busybox', 'latest', undefined],
    ['docker.io/library/busybox:1', 'docker.io/library/busybox:1', 'busybox:1', 'docker.io', 'library/busybox', '1', undefined],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest', 'docker.io', 'library/busybox', 'latest', undefined],
    ['user/app', 'docker.io/user/app:latest', 'user/app:latest', 'docker.io', 'user/app', 'latest', undefined],
    ['user/app/sub:2', 'docker.io/user/app/sub:2', 'user/app/sub:2', 'docker.io', 'user/app/sub', '2', undefined],
    ['docker.io/library/a/b', 'docker.io/library/a/b:latest', 'library/a/b:latest', 'docker.io', 'library/a/b', 'latest', undefined],
    ['quay.io/org/app:v1', 'quay.io/org/app:v1', 'quay.io/org/app:v1', 'quay.io', 'org/app', 'v1', undefined],
    ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10', 'registry.k8s.io', 'pause', '3.10', undefined],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest', 'localhost', 'app', 'latest', undefined],
    ['localhost:5000/app:dev', 'localhost:5000/app:dev', 'localhost:5000/app:dev', 'localhost:5000', 'app', 'dev', undefined],
    ['127.0.0.1:5000/team/app', '127.0.0.1:5000/team/app:latest', '127.0.0.1:5000/team/app:latest', '127.0.0.1:5000', 'team/app', 'latest', undefined],
    ['[::1]:5000/app', '[::1]:5000/app:latest', '[::1]:5000/app:latest', '[::1]:5000', 'app', 'latest', undefined],
    // A bare "localhost:5000" is repository "localhost" with tag "5000", exactly as Docker reads it.
    ['localhost:5000', 'docker.io/library/localhost:5000', 'localhost:5000', 'docker.io', 'library/localhost', '5000', undefined],
    // Capital letters in the first component make it a host (Docker's rule).
    ['Foo/bar', 'Foo/bar:latest', 'Foo/bar:latest', 'Foo', 'bar', 'latest', undefined],
    ['my-app', 'docker.io/library/my-app:latest', 'my-app:latest', 'docker.io', 'library/my-app', 'latest', undefined],
    ['a--b__c.d_e', 'docker.io/library/a--b__c.d_e:latest', 'a--b__c.d_e:latest', 'docker.io', 'library/a--b__c.d_e', 'latest', undefined],
    ['app:V1_x.y-Z', 'docker.io/library/app:V1_x.y-Z', 'app:V1_x.y-Z', 'docker.io', 'library/app', 'V1_x.y-Z', undefined],
    [`busybox@${D256}`, `docker.io/library/busybox@${D256}`, `busybox@${D256}`, 'docker.io', 'library/busybox', undefined, D256],
    [`busybox:1.36@${D256}`, `docker.io/library/busybox:1.36@${D256}`, `busybox:1.36@${D256}`, 'docker.io', 'library/busybox', '1.36', D256],
    [`ghcr.io/o/r@${D512}`, `ghcr.io/o/r@${D512}`, `ghcr.io/o/r@${D512}`, 'ghcr.io', 'o/r', undefined, D512],
    // Short "sha256:abc" is not an ID: it reads as repository sha256, tag abc.
    ['sha256:abc', 'docker.io/library/sha256:abc', 'sha256:abc', 'docker.io', 'library/sha256', 'abc', undefined],
  ];

  test.each(table)('%s', (input, canonical, familiar, domain, path, tag, digest) => {
    const ref = parseReference(input);
    expect(ref.string()).toBe(canonical);
    expect(ref.familiar()).toBe(familiar);
    expect(ref.domain).toBe(domain);
    expect(ref.path).toBe(path);
    expect(ref.tag).toBe(tag);
    expect(ref.digest).toBe(digest);
    expect(ref.name).toBe(`${domain}/${path}`);
    expect(String(ref)).toBe(canonical);
  });

  test('familiar and canonical forms round-trip', () => {
    for (const [input] of table) {
      const ref = parseReference(input);
      expect(parseReference(ref.familiar()).string()).toBe(ref.string());
      expect(parseReference(ref.string()).string()).toBe(ref.string());
    }
  });

  test('the digest wins over the tag for fetching', () => {
    const ref = parseReference(`busybox:1.36@${D256}`);
    expect(ref.object).toBe(D256);
    expect(parseReference('busybox:1.36').object).toBe('1.36');
    expect(parseReference('busybox').object).toBe('latest');
  });

  test('name length limit is 255 characters as written', () => {
    const ok = 'a'.repeat(255);
    expect(parseReference(ok).path).toBe(`library/${ok}`);
    expect(parseReference(`${'b'.repeat(200)}/${'c'.repeat(54)}`).path).toHaveLength(255);
  });

  test('tag length limit is 128 characters', () => {
    expect(parseReference(`app:${'t'.repeat(128)}`).tag).toHaveLength(128);
  });
});

describe('parseReference rejects malformed references with a reason', () => {
  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['Busybox', /must be lowercase/],
    ['docker.io/User/app', /must be lowercase/],
    ['quay.io/Org/app:1', /must be lowercase/],
    ['busybox:', /tag after ":" is empty/],
    ['busybox:-x', /may not start with "\." or "-"/],
    ['busybox:a+b', /tag "a\+b"/],
    [`app:${'t'.repeat(129)}`, /129 characters long; the limit is 128/],
    ['a'.repeat(256), /256 characters long; the limit is 255/],
    ['busybox@sha256:abc', /has 3 hex characters; sha256 needs 64/],
    [`busybox@sha256:${'A'.repeat(64)}`, /lowercase hexadecimal/],
    [`busybox@md5:${'a'.repeat(32)}`, /algorithm "md5" is not supported/],
    ['busybox@latest', /not of the form <algorithm>:<hex>/],
    [`a@${D256}@${D256}`, /more than one "@"/],
    ['https://docker.io/busybox', /no URL scheme/],
    ['bus box', /whitespace/],
    ['a//b', /empty component/],
    ['foo/', /empty component/],
    ['-foo', /path component "-foo"/],
    ['foo_', /path component "foo_"/],
    ['foo___bar', /path component "foo___bar"/],
    ['foo.-bar', /path component "foo.-bar"/],
    ['example.com/', /path after "example.com\/" is empty/],
    ['exa_mple.com/foo', /registry host "exa_mple.com" is not a valid/],
    ['-bad.com/foo', /registry host "-bad.com"/],
    ['host.com:port/foo', /registry host "host.com:port"/],
    [':tag', /repository name is empty/],
    [`@${D256}`, /repository name is empty/],
    [D256, /image ID, not a reference/],
    ['f'.repeat(64), /image ID, not a reference/],
  ];

  test.each(bad)('%s', (input, reason) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(reason);
    expect((err as Error).message).toContain(`"${input}"`);
  });
});

describe('image IDs', () => {
  test('sha256:<hex> and bare hex are IDs', () => {
    const hex = '0123456789abcdef'.repeat(4);
    expect(parseImageId(`sha256:${hex}`)).toBe(`sha256:${hex}`);
    expect(parseImageId(hex)).toBe(`sha256:${hex}`);
    expect(parseImageSpec(hex)).toEqual({ kind: 'id', id: `sha256:${hex}` });
    expect(parseImageSpec(`sha256:${hex}`)).toEqual({ kind: 'id', id: `sha256:${hex}` });
  });

  test('near misses are not IDs', () => {
    expect(parseImageId('0123456789abcdef'.repeat(4).slice(1))).toBeUndefined();
    expect(parseImageId('0123456789ABCDEF'.repeat(4))).toBeUndefined();
    expect(parseImageId(`sha512:${'0'.repeat(64)}`)).toBeUndefined();
    const spec = parseImageSpec('busybox');
    expect(spec.kind).toBe('reference');
    if (spec.kind === 'reference') expect(spec.reference.string()).toBe('docker.io/library/busybox:latest');
  });
});

describe('withDigest / withTag', () => {
  test('pinning drops the tag', () => {
    const pinned = withDigest(parseReference('busybox:1.36'), D256);
    expect(pinned.string()).toBe(`docker.io/library/busybox@${D256}`);
    expect(pinned.tag).toBeUndefined();
    expect(() => withDigest(parseReference('busybox'), 'sha256:zz')).toThrow(InvalidArgumentError);
  });

  test('tagging drops the digest', () => {
    expect(withTag(parseReference(`busybox@${D256}`), 'v2').string()).toBe('docker.io/library/busybox:v2');
    expect(() => withTag(parseReference('busybox'), '.bad')).toThrow(/not a valid tag/);
  });
});
