import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAX_TIMER_MS, setTimerAt } from '../../../src/util/long-timer';
import { LeftoverSweeper, PendingCreations } from '../../../src/util/pending';

describe('setTimerAt', () => {
  afterEach(() => jest.useRealTimers());

  it('waits beyond what one Node timer holds, and fires at the end', () => {
    jest.useFakeTimers({ now: 0 });
    const fired = jest.fn();
    setTimerAt(3 * MAX_TIMER_MS + 10, fired);
    jest.advanceTimersByTime(3 * MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
    jest.advanceTimersByTime(10);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('never fires for an int64 grace period of seconds, and a cleared timer never fires', () => {
    jest.useFakeTimers({ now: 0 });
    const far = jest.fn();
    const cleared = jest.fn();
    setTimerAt(Number(2n ** 63n - 1n) * 1000, far);
    setTimerAt(100, cleared).clear();
    jest.advanceTimersByTime(10 * MAX_TIMER_MS);
    expect(far).not.toHaveBeenCalled();
    expect(cleared).not.toHaveBeenCalled();
  });

  it('fires at once for a time already past', () => {
    const fired = jest.fn();
    setTimerAt(Date.now() - 1, fired);
    expect(fired).toHaveBeenCalledTimes(1);
  });
});

describe('PendingCreations', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'pending-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('lists as leftovers only markers whose creation does not run here', async () => {
    const abandoned = jest.fn();
    const p = new PendingCreations<{ n: number }>(dir, abandoned);
    p.begin('a', { n: 1 });
    p.begin('b', { n: 2 });
    p.begin('c', { n: 3 });
    expect(await p.leftovers()).toEqual([]);
    await p.end('a');
    p.abandon('b');
    expect(abandoned).toHaveBeenCalledTimes(1);
    expect(await p.leftovers()).toEqual([{ id: 'b', data: { n: 2 } }]);
    // A new process sees every marker left on disk.
    const next = new PendingCreations<{ n: number }>(dir);
    expect((await next.leftovers()).map((l) => l.id).sort()).toEqual(['b', 'c']);
  });

  it('drops a marker killed between write and rename, and keeps an unreadable one by ID', async () => {
    writeFileSync(path.join(dir, 'x.json.tmp'), '{"n":');
    writeFileSync(path.join(dir, 'y.json'), 'not json');
    const p = new PendingCreations<{ n: number }>(dir);
    expect(await p.leftovers()).toEqual([{ id: 'y', data: undefined }]);
    expect(existsSync(path.join(dir, 'x.json.tmp'))).toBe(false);
    expect(readdirSync(dir)).toEqual(['y.json']);
  });
});

describe('LeftoverSweeper', () => {
  it('retries while leftovers remain and a retry can succeed; one pass at a time', async () => {
    let remaining = 3;
    let running = 0;
    let peak = 0;
    const sweep = jest.fn(async () => {
      peak = Math.max(peak, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return (remaining = Math.max(0, remaining - 1));
    });
    const s = new LeftoverSweeper(sweep, () => true, () => undefined, 10);
    // Two triggers, two passes (never at once), then one retry for what remained, then nothing.
    await Promise.all([s.run(), s.run()]);
    expect(peak).toBe(1);
    expect(sweep).toHaveBeenCalledTimes(2);
    await new Promise((r) => setTimeout(r, 80));
    expect(sweep).toHaveBeenCalledTimes(3);
    expect(remaining).toBe(0);
  });

  it('leaves the retry to the next trigger when it cannot succeed now, and reports failures', async () => {
    const errors: string[] = [];
    const sweep = jest.fn(async (): Promise<number> => {
      throw new Error('containerd down');
    });
    const s = new LeftoverSweeper(sweep, () => false, (e) => errors.push(e.message), 10);
    await s.run();
    await new Promise((r) => setTimeout(r, 40));
    expect(sweep).toHaveBeenCalledTimes(1);
    expect(errors).toEqual(['containerd down']);
  });
});
