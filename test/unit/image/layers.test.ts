import { createHash } from 'node:crypto';
import { chainIds, configGcLabels, indexGcLabel, manifestGcLabels } from '../../../src/image/layers';

const d = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

describe('chainIds', () => {
  it('is the diff ID for the base layer and hashes "parent diff" above it', () => {
    const [a, b, c] = [d('a'), d('b'), d('c')];
    const ids = chainIds([a, b, c]);
    expect(ids[0]).toBe(a);
    const ab = 'sha256:' + createHash('sha256').update(`${a} ${b}`).digest('hex');
    expect(ids[1]).toBe(ab);
    expect(ids[2]).toBe('sha256:' + createHash('sha256').update(`${ab} ${c}`).digest('hex'));
  });

  it('is empty for an image without layers', () => {
    expect(chainIds([])).toEqual([]);
  });
});

describe('GC labels', () => {
  it('reference a fetched child of an index by its position in the list', () => {
    expect(indexGcLabel(3, 'sha256:1')).toEqual({ 'containerd.io/gc.ref.content.m.3': 'sha256:1' });
  });

  it('reference config and layers of a manifest', () => {
    expect(manifestGcLabels('sha256:c', ['sha256:l0', 'sha256:l1'])).toEqual({
      'containerd.io/gc.ref.content.config': 'sha256:c',
      'containerd.io/gc.ref.content.l.0': 'sha256:l0',
      'containerd.io/gc.ref.content.l.1': 'sha256:l1',
    });
  });

  it('reference the top snapshot of the chain from the config, per snapshotter', () => {
    expect(configGcLabels('overlayfs', 'sha256:top')).toEqual({ 'containerd.io/gc.ref.snapshot.overlayfs': 'sha256:top' });
    expect(configGcLabels('overlayfs', undefined)).toEqual({});
  });
});
