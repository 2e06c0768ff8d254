import { CallOptions, Client, ClientReadableStream, ClientUnaryCall, Metadata, ServiceDefinition, ServiceError } from '@grpc/grpc-js';

/** Per-call context: cancellation, a deadline, and (for containerd) a lease. */
export interface CallContext {
  signal?: AbortSignal;
  /** Absolute deadline (ms since epoch). */
  deadline?: number;
  /** containerd lease that protects new content/snapshots from GC during the call. */
  lease?: string;
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
  /** Turns a failed call (or a call cancelled before it began) into the error callers see. */
  mapError(err: ServiceError, method: string): Error;
  /** The error for a call whose signal had already fired. */
  cancelled(method: string): Error;
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
    const what = `${serviceName}.${method.path.split('/').pop() ?? name}`;
    out[name] = (request: unknown, ctx?: CallContext) =>
      new Promise((resolve, reject) => {
        if (ctx?.signal?.aborted) {
          reject(how.cancelled(what));
          return;
        }
        const call = fn(request, how.metadata(ctx), how.options(ctx), (err, res) => {
          ctx?.signal?.removeEventListener('abort', onAbort);
          if (err) reject(how.mapError(err, what));
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
      reject(how.cancelled(what));
      return;
    }
    const out: Res[] = [];
    const call = method(request, how.metadata(ctx), how.options(ctx));
    const onAbort = () => call.cancel();
    ctx?.signal?.addEventListener('abort', onAbort, { once: true });
    call.on('data', (m: Res) => out.push(m));
    call.on('error', (err: ServiceError) => {
      ctx?.signal?.removeEventListener('abort', onAbort);
      reject(how.mapError(err, what));
    });
    call.on('end', () => {
      ctx?.signal?.removeEventListener('abort', onAbort);
      resolve(out);
    });
  });
}
