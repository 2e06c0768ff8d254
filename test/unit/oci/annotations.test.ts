import { newBaseSpec } from '../../../src/oci/defaults';
import { CRI_ANNOTATIONS, annotationMatches, passthroughAnnotations, withAnnotations } from '../../../src/oci/annotations';

describe('annotations', () => {
  it('uses containerd\'s CRI annotation keys', () => {
    expect(CRI_ANNOTATIONS.containerType).toBe('io.kubernetes.cri.container-type');
    expect(CRI_ANNOTATIONS.sandboxId).toBe('io.kubernetes.cri.sandbox-id');
    expect(CRI_ANNOTATIONS.sandboxName).toBe('io.kubernetes.cri.sandbox-name');
    expect(CRI_ANNOTATIONS.sandboxNamespace).toBe('io.kubernetes.cri.sandbox-namespace');
    expect(CRI_ANNOTATIONS.containerName).toBe('io.kubernetes.cri.container-name');
    expect(CRI_ANNOTATIONS.imageName).toBe('io.kubernetes.cri.image-name');
  });

  it('matches patterns like path.Match', () => {
    expect(annotationMatches('io.katacontainers.*', 'io.katacontainers.config.hypervisor')).toBe(true);
    expect(annotationMatches('io.katacontainers.*', 'io.katacontainersX')).toBe(false);
    expect(annotationMatches('a/*', 'a/b')).toBe(true);
    expect(annotationMatches('a/*', 'a/b/c')).toBe(false);
    expect(annotationMatches('a?c', 'abc')).toBe(true);
    expect(annotationMatches('a.c', 'abc')).toBe(false);
  });

  it('passes through only matching annotations', () => {
    const src = { 'io.katacontainers.x': '1', 'other': '2' };
    expect(passthroughAnnotations(src, ['io.katacontainers.*'])).toEqual({ 'io.katacontainers.x': '1' });
    expect(passthroughAnnotations(src, [])).toEqual({});
  });

  it('withAnnotations merges', () => {
    const spec = newBaseSpec();
    withAnnotations({ a: '1' })(spec);
    withAnnotations({ b: '2', a: '3' })(spec);
    expect(spec.annotations).toEqual({ a: '3', b: '2' });
  });
});
