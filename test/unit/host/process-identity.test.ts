import { parseProcessIdentity } from '../../../src/host/process-identity';

const status = (uid: string, gid: string, groups: string) =>
  `Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t${uid}\nGid:\t${gid}\nFDSize:\t64\nGroups:\t${groups}\nNStgid:\t1\n`;

describe('parseProcessIdentity', () => {
  it('takes the effective IDs and the sorted supplementary groups', () => {
    expect(parseProcessIdentity(status('1000\t1001\t1000\t1001', '2000\t2001\t2000\t2001', '3000 1000 2000 '))).toEqual({
      uid: 1001,
      gid: 2001,
      groups: [1000, 2000, 3000],
    });
  });

  it('reads an empty Groups line as no groups', () => {
    expect(parseProcessIdentity(status('0\t0\t0\t0', '0\t0\t0\t0', ''))).toEqual({ uid: 0, gid: 0, groups: [] });
  });

  it('answers undefined for text that is not a status file', () => {
    expect(parseProcessIdentity('')).toBeUndefined();
    expect(parseProcessIdentity(status('x\ty', '0\t0\t0\t0', ''))).toBeUndefined();
    expect(parseProcessIdentity('Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n')).toBeUndefined();
  });
});
