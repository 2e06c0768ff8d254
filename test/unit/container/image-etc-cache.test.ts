import { ImageEtcCache } from '../../../src/container/image-files';

describe('ImageEtcCache', () => {
  test('keeps files per snapshotter and parent; nothing for an empty rootfs', () => {
    const cache = new ImageEtcCache();
    cache.remember('overlayfs', 'sha256:a', { passwd: 'root:x:0:0::/root:/bin/sh\n', group: undefined });
    cache.remember('overlayfs', '', { passwd: 'x' });
    expect(cache.get('overlayfs', 'sha256:a')).toEqual({ passwd: 'root:x:0:0::/root:/bin/sh\n', group: undefined });
    expect(cache.get('native', 'sha256:a')).toBeUndefined();
    expect(cache.get('overlayfs', '')).toBeUndefined();
  });

  test('does not keep a large file, and drops the oldest image beyond its bound', () => {
    const cache = new ImageEtcCache();
    cache.remember('overlayfs', 'big', { passwd: 'a'.repeat(64 * 1024 + 1) });
    expect(cache.get('overlayfs', 'big')).toBeUndefined();
    for (let i = 0; i <= 256; i++) cache.remember('overlayfs', `p${i}`, { group: `g${i}` });
    expect(cache.get('overlayfs', 'p0')).toBeUndefined();
    expect(cache.get('overlayfs', 'p1')).toEqual({ group: 'g1' });
    expect(cache.get('overlayfs', 'p256')).toEqual({ group: 'g256' });
  });
});
