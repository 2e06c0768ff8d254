import { AlreadyExistsError } from '../../../src/errors';
import { KeyedMutex } from '../../../src/util/keyed-mutex';
import { NameRegistrar } from '../../../src/util/name-registrar';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('KeyedMutex', () => {
  it('runs calls on one key one at a time, in order', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const job = (name: string, ms: number) =>
      m.run('a', async () => {
        log.push(`start ${name}`);
        await tick(ms);
        log.push(`end ${name}`);
      });
    await Promise.all([job('1', 20), job('2', 1), job('3', 1)]);
    expect(log).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
    expect(m.size).toBe(0);
  });

  it('runs calls on different keys in parallel', async () => {
    const m = new KeyedMutex();
    let running = 0;
    let peak = 0;
    const job = (key: string) =>
      m.run(key, async () => {
        peak = Math.max(peak, ++running);
        await tick(10);
        running--;
      });
    await Promise.all([job('a'), job('b'), job('c')]);
    expect(peak).toBe(3);
  });

  it('keeps serving a key after a call on it failed', async () => {
    const m = new KeyedMutex();
    await expect(m.run('a', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(m.run('a', async () => 42)).resolves.toBe(42);
  });
});

describe('NameRegistrar', () => {
  it('refuses a name held by another ID, and frees it on release', () => {
    const r = new NameRegistrar('pod sandbox');
    r.reserve('web_default_uid_0', 'id1');
    r.reserve('web_default_uid_0', 'id1');
    expect(() => r.reserve('web_default_uid_0', 'id2')).toThrow(AlreadyExistsError);
    expect(() => r.reserve('web_default_uid_0', 'id2')).toThrow(/id1/);
    r.release('web_default_uid_0', 'id2');
    expect(r.owner('web_default_uid_0')).toBe('id1');
    r.release('web_default_uid_0', 'id1');
    r.reserve('web_default_uid_0', 'id2');
    expect(r.owner('web_default_uid_0')).toBe('id2');
  });
});
