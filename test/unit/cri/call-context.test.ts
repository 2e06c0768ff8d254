import { EventEmitter, getEventListeners } from 'node:events';
import { contextFor } from '../../../src/cri/dispatch';
import { CancelledError, DeadlineExceededError } from '../../../src/errors';
import { silentLogger } from '../../../src/log/logger';

/** What contextFor needs of a grpc-js call: its deadline and its 'cancelled' event. */
function fakeCall(deadline: number = Infinity) {
  const call = new EventEmitter() as EventEmitter & { getDeadline(): number };
  call.getDeadline = () => deadline;
  return call;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a CRI call\'s context (signal made when first asked for)', () => {
  it('carries a cancel that came before anyone held the signal', () => {
    const call = fakeCall();
    const { ctx } = contextFor(call, new AbortController().signal, silentLogger());
    call.emit('cancelled');
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toBeInstanceOf(CancelledError);
  });

  it('is aborted as a deadline when the deadline passed before the first ask, and fires on time after it', async () => {
    const late = contextFor(fakeCall(Date.now() - 1), new AbortController().signal, silentLogger());
    expect(late.ctx.signal.reason).toBeInstanceOf(DeadlineExceededError);

    const soon = contextFor(fakeCall(Date.now() + 40), new AbortController().signal, silentLogger());
    const signal = soon.ctx.signal;
    expect(signal.aborted).toBe(false);
    expect(soon.ctx.signal).toBe(signal);
    await sleep(80);
    expect(signal.reason).toBeInstanceOf(DeadlineExceededError);
  });

  it('follows the daemon\'s drain, before or after the first ask, and nothing after the call is done', async () => {
    const drain = new AbortController();
    const held = contextFor(fakeCall(), drain.signal, silentLogger());
    const signal = held.ctx.signal;
    const finished = contextFor(fakeCall(Date.now() + 20), drain.signal, silentLogger());
    const finishedSignal = finished.ctx.signal;
    finished.done();
    drain.abort();
    expect(signal.reason).toBeInstanceOf(CancelledError);
    expect((signal.reason as Error).message).toMatch(/shutting down/);
    expect(contextFor(fakeCall(), drain.signal, silentLogger()).ctx.signal.aborted).toBe(true);
    await sleep(40);
    expect(finishedSignal.aborted).toBe(false);
  });

  it('makes no signal, timer or listener for a call that never asks', () => {
    const drain = new AbortController();
    const call = fakeCall(Date.now() + 60_000);
    const { ctx, done } = contextFor(call, drain.signal, silentLogger());
    expect(getEventListeners(drain.signal, 'abort')).toHaveLength(0);
    done();
    // One that asks gets a drain listener, and gives it back when done.
    const asked = contextFor(call, drain.signal, silentLogger());
    expect(asked.ctx.signal.aborted).toBe(false);
    expect(getEventListeners(drain.signal, 'abort')).toHaveLength(1);
    asked.done();
    expect(getEventListeners(drain.signal, 'abort')).toHaveLength(0);
    expect(ctx.deadline).toBe(call.getDeadline());
  });
});
