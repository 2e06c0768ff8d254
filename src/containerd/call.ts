import { CallOptions, Client, Metadata, ServiceDefinition, ServiceError } from '@grpc/grpc-js';
import { CallContext, PromisifyOptions, promisifyUnary, UnaryMethods } from '../grpc/promisify';
import { abortError, AdapterError, errorOfKind } from '../errors';
import { codeName, kindOfCode } from '../grpc/codes';
import { containerdCallMeter } from '../metrics';

export type { CallContext, UnaryMethods };

/** Maps a containerd gRPC failure to the adapter's own error kinds, keeping containerd's words. */
export function fromGrpcError(err: ServiceError, what: string): AdapterError {
  return errorOfKind(kindOfCode(err.code), `containerd ${what}: ${err.details || err.message}`, { cause: err });
}

export interface CallDefaults {
  namespace: string;
  /** Used when the context has no deadline. */
  timeoutMs: number;
}

export function callMetadata(defaults: CallDefaults, ctx?: CallContext): Metadata {
  const md = new Metadata();
  md.set('containerd-namespace', defaults.namespace);
  if (ctx?.lease) md.set('containerd-lease', ctx.lease);
  return md;
}

export function callOptions(defaults: CallDefaults, ctx?: CallContext): Partial<CallOptions> {
  return { deadline: ctx?.deadline ?? Date.now() + defaults.timeoutMs };
}

/** Promise-returning containerd methods with namespace, lease, deadline and typed errors. */
export function unaryMethods<C extends Client>(
  client: C,
  definition: ServiceDefinition,
  serviceName: string,
  defaults: CallDefaults,
): UnaryMethods<C> {
  return promisifyUnary(client, definition, serviceName, containerdCallOptions(defaults));
}

/** Metadata, deadline and error mapping of every containerd call, unary or streaming. */
export function containerdCallOptions(defaults: CallDefaults): PromisifyOptions {
  return {
    metadata: (ctx) => callMetadata(defaults, ctx),
    options: (ctx) => callOptions(defaults, ctx),
    mapError: fromGrpcError,
    cancelled: (what, reason) => abortError(reason, `containerd ${what}`),
    observe: (service, method) => {
      const meter = containerdCallMeter(service, method);
      return (seconds, err) => meter.done(seconds, err ? codeName(err.code) : undefined);
    },
  };
}
