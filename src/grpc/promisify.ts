import { performance } from 'node:perf_hooks';
import { CallOptions, Client, ClientReadableStream, ClientUnaryCall, Metadata, ServiceDefinition, ServiceError } from '@grpc/grpc-js';

/** Per-call context: cancellation, a deadline, and (for containerd) a lease. */
export interface CallContext {
  signal?: AbortSignal;
  /** Absolute deadline (ms since epoch). */
  deadline?: number;
  /** containerd lease that protects new content/snapshots from GC during the call. */
  lease?: string;
}

/** A call that ended because its signal fired (we cancelled it) fails with the signal's reason, not CANCELLED. */
export function failure(how: PromisifyOptions, err: ServiceError, what: string, ctx: CallContext | undefined): Error {
  return ctx?.signal?.aborted ? how.cancelled(what, ctx.signal.reason) : how.mapError(err, what);
}

type UnaryFn<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** The unary methods of a generated grpc-js client, as promise-returning functions. */
export type UnaryMethods<C> = {
  [K in keyof C as C[K] extends UnaryFn<never, unknown> ? K : never]: C[K] extends UnaryFn<infer Req, infer Res>
    ? (request: Req, ctx?: CallContext) => Promise<Res>
    : never;
};

export interface PromisifyOptions {
  metadata(ctx?: CallContext): Metadata;
  options(ctx?: CallContext): Partial<CallOptions>;
  /** Turns a failed call into the error callers see. */
  mapError(err: ServiceError, method: string): Error;
  /** The error for a call whose signal fired (before or during it), from the signal's reason. */
  cancelled(method: string, reason: unknown): Error;
  /**
   * Bound once per method (service and method name as in the proto); the
   * returned function hears each finished call's duration and error.
   */
  observe?(service: string, method: string): (seconds: number, err: ServiceError | null) => void;
}

/**
 * Wraps every unary method of a generated client so that it returns a
 * promise, carries metadata and a deadline, and stops when the caller's
 * AbortSignal fires.
 */
export function promisifyUnary<C extends Client>(
  client: C,
  definition: ServiceDefinition,
  serviceName: string,
  how: PromisifyOptions,
): UnaryMethods<C> {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    if (method.requestStream || method.responseStream) continue;
    const fn = (client as unknown as Record<string, UnaryFn<unknown, unknown>>)[name]!.bind(client);
    const methodName = method.path.split('/').pop() ?? name;
    const what = `${serviceName}.${methodName}`;
    const observe = how.observe?.(serviceName, methodName);
    out[name] = (request: unknown, ctx?: CallContext) =>
      new Promise((resolve, reject) => {
        if (ctx?.signal?.aborted) {
          reject(how.cancelled(what, ctx.signal.reason));
          return;
        }
        const start = observe ? performance.now() : 0;
        const call = fn(request, how.metadata(ctx), how.options(ctx), (err, res) => {
          ctx?.signal?.removeEventListener('abort', onAbort);
          observe?.((performance.now() - start) / 1000, err);
          if (err) reject(failure(how, err, what, ctx));
          else resolve(res);
        });
        function onAbort(): void {
          call.cancel();
        }
        ctx?.signal?.addEventListener('abort', onAbort, { once: true });
      });
  }
  return out as UnaryMethods<C>;
}

type ServerStreamFn<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
) => ClientReadableStream<Res>;

/**
 * Collects every message of a server-streaming call (containerd's List
 * methods) into an array, with the same metadata, deadline and error mapping
 * as unary calls.
 */
export function collectStream<Req, Res>(
  method: ServerStreamFn<Req, Res>,
  request: Req,
  what: string,
  how: PromisifyOptions,
  ctx?: CallContext,
): Promise<Res[]> {
  return new Promise((resolve, reject) => {
    if (ctx?.signal?.aborted) {
      reject(how.cancelled(what, ctx.signal.reason));
      return;
    }
    const out: Res[] = [];
    const call = method(request, how.metadata(ctx), how.options(ctx));
    const onAbort = () => call.cancel();
    ctx?.signal?.addEventListener('abort', onAbort, { once: true });
    call.on('data', (m: Res) => out.push(m));
    call.on('error', (err: ServiceError) => {
      ctx?.signal?.removeEventListener('abort', onAbort);
      reject(failure(how, err, what, ctx));
    });
    call.on('end', () => {
      ctx?.signal?.removeEventListener('abort', onAbort);
      resolve(out);
    });
  });
}
