import * as fs from 'node:fs';
import { parseNetDev, readNetDev } from '../../../src/stats/net-dev';

const SAMPLE = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0       0          0
  eth0: 9876543     321    2    7    0     0          0         0   123456     210    1    4    0     0       0          0
veth-x:       5       1    0    0    0     0          0         0        6       1    0    0    0     0       0          0
`;

describe('parseNetDev', () => {
  it('reads bytes, packets, errors and drops per interface, leaving out loopback', () => {
    expect(parseNetDev(SAMPLE)).toEqual([
      { name: 'eth0', rxBytes: 9876543n, rxPackets: 321n, rxErrors: 2n, rxDropped: 7n, txBytes: 123456n, txPackets: 210n, txErrors: 1n, txDropped: 4n },
      { name: 'veth-x', rxBytes: 5n, rxPackets: 1n, rxErrors: 0n, rxDropped: 0n, txBytes: 6n, txPackets: 1n, txErrors: 0n, txDropped: 0n },
    ]);
  });

  it('skips malformed lines instead of failing', () => {
    expect(parseNetDev(`h1\nh2\neth0: 1 2 3\nbogus line\n  eth1: x 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n`)).toEqual([]);
  });

  it('reads this process\'s own namespace through /proc, and gives undefined for a process that is gone', async () => {
    const own = await readNetDev(process.pid);
    // The same interfaces as the file read here (counters move on between the two reads).
    const names = parseNetDev(fs.readFileSync(`/proc/${process.pid}/net/dev`, 'utf8')).map((i) => i.name);
    expect(own?.map((i) => i.name)).toEqual(names);
    expect(await readNetDev(0)).toBeUndefined();
    expect(await readNetDev(2 ** 22 + 1)).toBeUndefined();
  });
});
