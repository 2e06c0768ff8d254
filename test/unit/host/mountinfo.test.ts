import { mountContaining, parseMountinfo } from '../../../src/host/mountinfo';

const SAMPLE = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '30 22 0:25 / /run rw,nosuid shared:5 - tmpfs tmpfs rw',
  '31 30 0:26 / /run/netns rw shared:6 master:2 - tmpfs tmpfs rw',
  '40 22 0:30 / /mnt/with\\040space rw - tmpfs tmpfs rw',
  '41 30 0:31 / /run rw - tmpfs tmpfs rw',
  '',
].join('\n');

describe('mountinfo', () => {
  const entries = parseMountinfo(SAMPLE);

  it('reads mount points (unescaped) and optional fields', () => {
    expect(entries.map((e) => e.mountpoint)).toEqual(['/', '/run', '/run/netns', '/mnt/with space', '/run']);
    expect(entries[2]!.optionalFields).toEqual(['shared:6', 'master:2']);
    expect(entries[3]!.optionalFields).toEqual([]);
  });

  it('finds the longest containing mount, the top one of a stack, and not a mere name prefix', () => {
    expect(mountContaining('/run/netns/x', entries)!.mountpoint).toBe('/run/netns');
    expect(mountContaining('/run/cri', entries)!.optionalFields).toEqual([]); // id 41 is on top of 30
    expect(mountContaining('/running', entries)!.mountpoint).toBe('/');
    expect(mountContaining('/mnt/with space/f', entries)!.mountpoint).toBe('/mnt/with space');
  });
});
