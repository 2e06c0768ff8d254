import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { remapGcLabel, remappedSnapshotName, shiftOwnership } from '../../../src/image/remap';

// lchown to arbitrary IDs needs root; the integration suite runs as root too.
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;

asRoot('shiftOwnership', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'remap-unit-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const owner = (rel: string) => {
    const st = lstatSync(path.join(root, rel));
    return [st.uid, st.gid];
  };

  it('moves every owner inside the range by the host offset, once, and keeps set-ID bits', async () => {
    // The range critest uses: host 1000, length 100000, so a shifted owner is still inside the range.
    const ranges = { uid: { containerID: 0, hostID: 1000, size: 100000 }, gid: { containerID: 0, hostID: 1000, size: 100000 } };
    mkdirSync(path.join(root, 'bin'));
    writeFileSync(path.join(root, 'bin/su'), 'x');
    chmodSync(path.join(root, 'bin/su'), 0o4755);
    writeFileSync(path.join(root, 'bin/wall'), 'x');
    chownSync(path.join(root, 'bin/wall'), 0, 5);
    chmodSync(path.join(root, 'bin/wall'), 0o2755);
    mkdirSync(path.join(root, 'home'));
    mkdirSync(path.join(root, 'home/app'));
    chownSync(path.join(root, 'home/app'), 1000, 2000);
    writeFileSync(path.join(root, 'far'), 'x');
    chownSync(path.join(root, 'far'), 200000, 200000);
    writeFileSync(path.join(root, 'a'), 'x');
    linkSync(path.join(root, 'a'), path.join(root, 'b'));
    linkSync(path.join(root, 'a'), path.join(root, 'bin/c'));
    symlinkSync('/etc/passwd', path.join(root, 'link'));

    const files = await shiftOwnership(root, ranges);

    expect(owner('.')).toEqual([1000, 1000]);
    expect(owner('bin/su')).toEqual([1000, 1000]);
    expect(lstatSync(path.join(root, 'bin/su')).mode & 0o7777).toBe(0o4755);
    expect(owner('bin/wall')).toEqual([1000, 1005]);
    expect(lstatSync(path.join(root, 'bin/wall')).mode & 0o7777).toBe(0o2755);
    expect(owner('home/app')).toEqual([2000, 3000]);
    // Outside the range: left alone (the namespace shows it as the overflow ID).
    expect(owner('far')).toEqual([200000, 200000]);
    // Three links to one inode: shifted once, not three times.
    for (const l of ['a', 'b', 'bin/c']) expect(owner(l)).toEqual([1000, 1000]);
    // The link itself, not what it points to.
    expect(owner('link')).toEqual([1000, 1000]);
    expect(lstatSync('/etc/passwd').uid).toBe(0);
    expect(files).toBe(9);
  });
});

describe('remapped snapshot names and GC labels', () => {
  const ranges = { uid: { containerID: 0, hostID: 200000, size: 65536 }, gid: { containerID: 0, hostID: 300000, size: 65536 } };
  it('name the mapping fully, so two mappings never share a copy or a reference', () => {
    expect(remappedSnapshotName('sha256:abc', ranges)).toBe('cri-adapter-remap/200000-65536-300000-65536/sha256:abc');
    expect(remapGcLabel('overlayfs', ranges)).toBe('containerd.io/gc.ref.snapshot.overlayfs/remap-200000-65536-300000-65536');
    const wider = { ...ranges, uid: { ...ranges.uid, size: 131072 } };
    expect(remapGcLabel('overlayfs', wider)).not.toBe(remapGcLabel('overlayfs', ranges));
  });
});
