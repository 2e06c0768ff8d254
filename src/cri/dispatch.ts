import {
  handleServerStreamingCall,
  handleUnaryCall,
  sendUnaryData,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  status as GrpcStatus,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { AdapterError, CancelledError, DeadlineExceededError, ResourceExhaustedError } from '../errors';
import { RefusedRequest } from '../grpc/decode-budget';
import type { Logger } from '../log/logger';
import { LongTimer, setTimerAt } from '../util/long-timer';
import { criOperationMeter } from '../metrics';
import { checkRequestBounds, clip } from '../util/bounds';
import { codeName, toStatus } from './status-mapping';
import { encodeListItems } from './wire-encoding';

/** What every CRI handler gets besides its request. */
export interface CriContext {
  /** Fires when the kubelet cancels the call, its deadline passes, or the daemon drains. */
  signal: AbortSignal;
  /** Absolute deadline in ms since epoch, when the caller set one. */
  deadline?: number;
  logger: Logger;
}

export type UnaryHandler<Req, Res> = (request: Req, ctx: CriContext) => Promise<Res>;
export type StreamHandler<Req, Res> = (request: Req, ctx: CriContext, send: (message: Res) => Promise<void>) => Promise<void>;

/** Handlers for some of a service's methods, keyed by the generated method name. */
export type HandlerTable<S> = {
  // Generated server interfaces carry grpc-js's string index signature; keep only the named methods.
  [K in keyof S as string extends K ? never : K]?: S[K] extends handleUnaryCall<infer Req, infer Res>
    ? UnaryHandler<Req, Res>
    : S[K] extends handleServerStreamingCall<infer Req, infer Res>
      ? StreamHandler<Req, Res>
      : never;
};

// Fields worth logging with every call: the kubelet greps logs by these IDs.
const ID_FIELDS = ['podSandboxId', 'containerId', 'imageId'] as const;

function idsOf(request: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof request !== 'object' || request === null) return out;
  const r = request as Record<string, unknown>;
  // Clipped: a refused request may carry a 1 MiB "ID".
  for (const f of ID_FIELDS) if (typeof r[f] === 'string' && r[f]) out[f] = clip(r[f] as string);
  const image = r.image as { image?: unknown } | undefined;
  if (image && typeof image.image === 'string' && image.image) out.image = clip(image.image);
  const config = r.config as { metadata?: { name?: unknown } } | undefined;
  if (config?.metadata && typeof config.metadata.name === 'string') out.name = clip(config.metadata.name);
  return out;
}

function deadlineOf(call: { getDeadline(): Date | number }): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** grpc-js times the deadline with libuv's clock, we read Date.now(): allow them to differ by this much. */
const DEADLINE_CLOCK_SLACK_MS = 10;

/**
 * Combines the call's own cancellation, its deadline and the daemon's drain
 * signal. The signal, its deadline timer and its drain listener are made when
 * a handler first asks for `ctx.signal`: the kubelet's many Status and List
 * calls are answered from memory and never do, and an AbortSignal per call
 * was the largest cost of this wrapper (about 10 us of 40 per Version call in
 * a profile). What happened before the first ask (a cancel, a passed
 * deadline, a drain) is the new signal's state at once.
 */
export function contextFor(
  call: { getDeadline(): Date | number; on(event: 'cancelled', cb: () => void): unknown },
  drain: AbortSignal,
  logger: Logger,
): { ctx: CriContext; done: () => void } {
  const deadline = deadlineOf(call);
  let controller: AbortController | undefined;
  /** Why the call was given up, once it was (also before anyone held the signal). */
  let reason: AdapterError | undefined;
  let finished = false;
  // The reason is typed: everything below tells a deadline from a cancel by its class (abortError).
  const abort = (why: () => AdapterError) => {
    if (finished || reason) return;
    reason = why();
    controller?.abort(reason);
  };
  const deadlinePassed = () => new DeadlineExceededError('the call\'s deadline passed');
  // grpc-js also emits 'cancelled' after a call completes normally; only a cancel before the answer counts.
  // It emits it too when the deadline passes (its own timer ends the call, and the client resets the
  // stream), usually before our timer below fires: then the deadline is the reason, not a cancel.
  call.on('cancelled', () =>
    abort(() =>
      deadline !== undefined && Date.now() >= deadline - DEADLINE_CLOCK_SLACK_MS ? deadlinePassed() : new CancelledError('cancelled by the client'),
    ),
  );
  const onDrain = () => abort(() => new CancelledError('the daemon is shutting down'));
  // A deadline can be further away than a Node timer holds (a StopContainer with a grace period
  // of weeks): a plain setTimeout would fire at once and cancel the call. (grpc-js 1.14 itself
  // truncates a grpc-timeout header past 2^31-1 ms to 32 bits, so over the wire such calls still fail.)
  let timer: LongTimer | undefined;
  const signalFor = (): AbortSignal => {
    controller = new AbortController();
    if (!finished) {
      if (drain.aborted) onDrain();
      else drain.addEventListener('abort', onDrain, { once: true });
      if (deadline !== undefined && !reason) {
        if (Date.now() >= deadline) abort(deadlinePassed);
        else timer = setTimerAt(deadline, () => abort(deadlinePassed));
      }
    }
    if (reason) controller.abort(reason);
    return controller.signal;
  };
  return {
    ctx: {
      get signal() {
        return controller?.signal ?? signalFor();
      },
      deadline,
      logger,
    },
    done: () => {
      finished = true;
      timer?.clear();
      if (controller) drain.removeEventListener('abort', onDrain);
    },
  };
}

/** The kubelet's (and crictl's) default gRPC receive limit; grpc-js enforces the same on what we send. */
export const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/** Room left for what a List answer holds besides its items (none of them has more than a few bytes). */
const LIST_FRAMING_BYTES = 1024;

/** An answer message over MAX_ANSWER_BYTES: sendInBatches splits the batch, unary List calls report it. */
export class AnswerTooLargeError extends ResourceExhaustedError {
  constructor(
    readonly bytes: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Refuses an answer a client with the usual 16 MiB limit could not receive.
 * `serialize` is the service's own (cri/wire-encoding.ts keeps each item's
 * bytes), so measuring costs one copy of cached bytes, not a second encode.
 */
function encodeBounded(serialize: (value: unknown) => Buffer, message: unknown, what: string): void {
  if (typeof message !== 'object' || message === null) return;
  const bytes = serialize(message);
  if (bytes.length > MAX_ANSWER_BYTES) {
    throw new AnswerTooLargeError(bytes.length, `${what}: the answer would be ${(bytes.length / 1048576).toFixed(1)} MiB, over the 16 MiB a kubelet accepts`);
  }
}

/** The Stream* RPC that serves a List* RPC's items in bounded messages (ListPodSandbox -> StreamPodSandboxes). */
function streamingTwin(definition: ServiceDefinition, rpcName: string): string | undefined {
  if (!rpcName.startsWith('List')) return undefined;
  const rest = rpcName.slice('List'.length);
  const names = Object.values(definition).map((m) => m.path.split('/').pop() ?? '');
  return names.find((n) => n === `Stream${rest}` || n === `Stream${rest}es` || n === `Stream${rest}s`);
}

/**
 * A List answer grows with what is stored: this refuses one no kubelet could
 * receive, naming the way out (a filter, or the RPC's Stream twin). Built once
 * per RPC.
 */
function listAnswerBound(definition: ServiceDefinition, rpcName: string, serialize: (value: unknown) => Buffer): (response: unknown) => Promise<unknown> {
  const twin = streamingTwin(definition, rpcName);
  const hint = twin ? `; narrow it with a filter or call ${twin}, which sends the items in bounded messages` : '; narrow it with a filter';
  return async (response) => {
    try {
      // Items first, a slice per turn, from the cache the serializer uses. Their bytes are the
      // whole answer but for a few bytes of framing, so only lists without cached items are
      // encoded here to be measured (stats answers: a second encode, every few seconds).
      const items = await encodeListItems(rpcName, response, MAX_ANSWER_BYTES);
      if (items === undefined) encodeBounded(serialize, response, rpcName);
      else if (items > MAX_ANSWER_BYTES - LIST_FRAMING_BYTES) {
        throw new AnswerTooLargeError(items, `${rpcName}: the answer would be over ${(items / 1048576).toFixed(1)} MiB, over the 16 MiB a kubelet accepts`);
      }
    } catch (err) {
      if (err instanceof AnswerTooLargeError) throw new ResourceExhaustedError(`${err.message}${hint}`);
      throw err;
    }
    return response;
  };
}

/**
 * Builds a grpc-js implementation of a whole service: methods in the table
 * get logging, deadline/cancel signals and error mapping; the rest answer
 * UNIMPLEMENTED naming the method.
 */
export function implement<S>(
  definition: ServiceDefinition,
  serviceName: string,
  table: HandlerTable<S>,
  logger: Logger,
  drain: AbortSignal,
): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const rpcName = method.path.split('/').pop() ?? name;
    const handler = (table as Record<string, unknown>)[name];
    // Bound once per RPC: a call only adds to pre-resolved children.
    const meter = criOperationMeter(rpcName);
    const log = (request: unknown, start: number, code: GrpcStatus, details?: string) => {
      meter.done((performance.now() - start) / 1000, code === GrpcStatus.OK ? undefined : codeName(code));
      // The kubelet polls several RPCs a second; build nothing for a line nobody will see.
      if (code === GrpcStatus.OK && !logger.isDebugEnabled()) return;
      const fields = { rpc: rpcName, ms: +(performance.now() - start).toFixed(3), ...idsOf(request) };
      if (code === GrpcStatus.OK) logger.debug('CRI call', fields);
      else if (code === GrpcStatus.INTERNAL || code === GrpcStatus.UNKNOWN)
        logger.error('CRI call failed', { ...fields, code: codeName(code), error: details });
      else logger.warn('CRI call failed', { ...fields, code: codeName(code), error: details });
    };

    if (method.responseStream) {
      impl[name] = (call: ServerWritableStream<unknown, unknown>) => {
        const start = performance.now();
        if (typeof handler !== 'function') {
          const details = `cri-adapter does not implement ${serviceName}/${rpcName}`;
          log(call.request, start, GrpcStatus.UNIMPLEMENTED, details);
          call.emit('error', { code: GrpcStatus.UNIMPLEMENTED, details });
          return;
        }
        if (call.request instanceof RefusedRequest) {
          log(undefined, start, GrpcStatus.INVALID_ARGUMENT, call.request.details);
          call.emit('error', { code: GrpcStatus.INVALID_ARGUMENT, details: call.request.details });
          return;
        }
        const { ctx, done } = contextFor(call, drain, logger);
        const send = (message: unknown) => {
          encodeBounded(method.responseSerialize, message, rpcName);
          return new Promise<void>((resolve) => {
            // Honour back-pressure from a slow reader instead of buffering the whole list.
            if (call.write(message)) resolve();
            else call.once('drain', () => resolve());
          });
        };
        let running: Promise<void>;
        try {
          // Before any work: bounds on IDs, names, sizes (util/bounds.ts).
          checkRequestBounds(call.request);
          running = (handler as StreamHandler<unknown, unknown>)(call.request, ctx, send);
        } catch (err) {
          running = Promise.reject(err);
        }
        running.then(
          () => {
            done();
            log(call.request, start, GrpcStatus.OK);
            call.end();
          },
          (err: unknown) => {
            done();
            const status = toStatus(err);
            log(call.request, start, status.code, status.details);
            call.emit('error', status);
          },
        );
      };
      continue;
    }

    const boundListAnswer = rpcName.startsWith('List') ? listAnswerBound(definition, rpcName, method.responseSerialize) : undefined;
    impl[name] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const start = performance.now();
      if (typeof handler !== 'function') {
        const details = `cri-adapter does not implement ${serviceName}/${rpcName}`;
        log(call.request, start, GrpcStatus.UNIMPLEMENTED, details);
        callback({ code: GrpcStatus.UNIMPLEMENTED, details });
        return;
      }
      // Over the decode budget (grpc/decode-budget.ts): refused before any handler.
      if (call.request instanceof RefusedRequest) {
        log(undefined, start, GrpcStatus.INVALID_ARGUMENT, call.request.details);
        callback({ code: GrpcStatus.INVALID_ARGUMENT, details: call.request.details });
        return;
      }
      let settled: Promise<unknown>;
      const { ctx, done } = contextFor(call, drain, logger);
      try {
        // Before any work: bounds on IDs, names, sizes (util/bounds.ts).
        checkRequestBounds(call.request);
        settled = (handler as UnaryHandler<unknown, unknown>)(call.request, ctx);
      } catch (err) {
        settled = Promise.reject(err);
      }
      if (boundListAnswer) settled = settled.then(boundListAnswer);
      settled.then(
        (response) => {
          done();
          log(call.request, start, GrpcStatus.OK);
          callback(null, response);
        },
        (err: unknown) => {
          done();
          const status = toStatus(err);
          log(call.request, start, status.code, status.details);
          callback(status);
        },
      );
    };
  }
  return impl;
}

// Enough per message to keep a long list cheap, small enough to stay far from gRPC's message limit.
const ITEMS_PER_MESSAGE = 200;

/**
 * Sends a list taken once (so each item goes exactly once, whatever changes
 * meanwhile) in messages of a bounded size, stopping if the caller leaves.
 * A batch whose message would outgrow a client's 16 MiB is split in halves
 * (items carry up to 0.6 MiB of labels and annotations each); only a single
 * item too large to send fails the call.
 */
export async function sendInBatches<T, M>(items: T[], ctx: CriContext, send: (m: M) => Promise<void>, wrap: (batch: T[]) => M): Promise<void> {
  const sendSlice = async (batch: T[]): Promise<void> => {
    try {
      await send(wrap(batch));
    } catch (err) {
      if (!(err instanceof AnswerTooLargeError) || batch.length === 1) throw err;
      const half = Math.ceil(batch.length / 2);
      await sendSlice(batch.slice(0, half));
      if (!ctx.signal.aborted) await sendSlice(batch.slice(half));
    }
  };
  for (let i = 0; i < items.length && !ctx.signal.aborted; i += ITEMS_PER_MESSAGE) {
    await sendSlice(items.slice(i, i + ITEMS_PER_MESSAGE));
  }
}
