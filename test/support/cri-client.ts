import { CallOptions, ClientReadableStream, credentials, Metadata, ServiceError } from '@grpc/grpc-js';
import { ImageServiceClient, ImageServiceService, RuntimeServiceClient, RuntimeServiceService } from '../../src/gen/runtime/v1/api';
import { CallContext, collectStream, promisifyUnary, UnaryMethods } from '../../src/grpc/promisify';

/** A failed CRI call as a test sees it: the gRPC code and the message. */
export class CriCallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
    method: string,
  ) {
    super(`${method}: ${details}`);
  }
}

export interface CriClient {
  runtime: UnaryMethods<RuntimeServiceClient>;
  image: UnaryMethods<ImageServiceClient>;
  raw: { runtime: RuntimeServiceClient; image: ImageServiceClient };
  /**
   * Reads a server-streaming call to its end, with the same deadline and
   * errors as the unary calls: `client.stream((md, o) => client.raw.runtime.streamContainers(req, md, o))`.
   */
  stream<Res>(start: (metadata: Metadata, options: Partial<CallOptions>) => ClientReadableStream<Res>, ctx?: CallContext): Promise<Res[]>;
  close(): void;
}

/** The rejection of a CRI call that must fail; a call that succeeds (or fails otherwise) fails the test. */
export async function criError(p: Promise<unknown>): Promise<CriCallError> {
  const r = await p.then(
    (v) => new Error(`expected the call to fail, it returned ${JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))}`),
    (e: unknown) => e,
  );
  if (!(r instanceof CriCallError)) throw r;
  return r;
}

/** A CRI client for tests and benchmarks: what the kubelet or crictl would send, through the real socket. */
export function criClient(socketPath: string, timeoutMs = 60_000): CriClient {
  const target = `unix://${socketPath}`;
  const runtime = new RuntimeServiceClient(target, credentials.createInsecure());
  const image = new ImageServiceClient(target, credentials.createInsecure());
  const how = {
    metadata: () => new Metadata(),
    options: (ctx?: { deadline?: number }) => ({ deadline: ctx?.deadline ?? Date.now() + timeoutMs }),
    mapError: (err: ServiceError, method: string) => new CriCallError(err.code, err.details, method),
    cancelled: (method: string) => new CriCallError(1, 'cancelled by the test', method),
  };
  return {
    runtime: promisifyUnary(runtime, RuntimeServiceService, 'RuntimeService', how),
    image: promisifyUnary(image, ImageServiceService, 'ImageService', how),
    raw: { runtime, image },
    stream: (start, ctx) => collectStream((_request: undefined, md, o) => start(md, o), undefined, 'stream', how, ctx),
    close() {
      runtime.close();
      image.close();
    },
  };
}
