import { BinaryWriter } from '@bufbuild/protobuf/wire';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { withDecodeBudget } from '../grpc/decode-budget';
import { varintSize, writeVarint } from '../grpc/varint';
import {
  Container,
  ContainerStatus,
  ContainerStatusResponse,
  Image,
  ImageServiceService,
  ImageStatusResponse,
  ListContainersResponse,
  ListImagesResponse,
  ListPodSandboxResponse,
  PodSandbox,
  PodSandboxStatus,
  PodSandboxStatusResponse,
  RuntimeServiceService,
  StreamContainersResponse,
  StreamImagesResponse,
  StreamPodSandboxesResponse,
} from '../gen/runtime/v1/api';

/*
 * Profiles of List/Status at 100 pods (test/bench/hot-path.ts) put 80-90 %
 * of the adapter's own time per call in protobuf encoding: every label and
 * annotation of every pod and container, as map entries, every second. The
 * mapping functions hand out the same object while a record is unchanged
 * (see memoByRecord), so the bytes of each such object are kept with it and
 * an answer is those bytes framed as its repeated (or single) field plus the
 * encoding of whatever else the answer holds. Protobuf lets fields come in
 * any order, so this is the same message a full encode gives.
 */

interface Codec<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
}

/** The encoding of each (read-only) message object, made once. */
class EncodedMessages<T extends object> {
  private readonly bytes = new WeakMap<T, Uint8Array>();

  constructor(private readonly codec: Codec<T>) {}

  of(message: T): Uint8Array {
    let b = this.bytes.get(message);
    if (!b) {
      b = this.codec.encode(message).finish();
      this.bytes.set(message, b);
    }
    return b;
  }
}

/** Serializes a response whose `field` (protobuf field number `fieldNumber`) holds cached messages. */
function serializer<R, K extends keyof R, T extends object>(
  codec: Codec<R>,
  field: K,
  fieldNumber: number,
  cache: EncodedMessages<T>,
): (response: R) => Buffer {
  const tag = (fieldNumber << 3) | 2; // length-delimited
  // The last answer: the kubelet asks for the same unchanged list every second, so an answer
  // made of the same message objects (and the same rest) is the same bytes.
  let last: { messages: readonly T[]; rest: Uint8Array; bytes: Buffer } | undefined;
  return (response) => {
    const value = response[field] as T | T[] | undefined;
    const messages: readonly T[] = Array.isArray(value) ? value : value !== undefined ? [value] : [];
    // The rest of the answer (info maps, timestamps) is encoded as usual, after the cached field.
    const rest = codec.encode({ ...response, [field]: Array.isArray(value) ? [] : undefined }).finish();
    if (last && sameMessages(last.messages, messages) && Buffer.from(rest.buffer, rest.byteOffset, rest.byteLength).equals(last.rest)) return last.bytes;
    const bytes = frameAhead(tag, messages.map((m) => cache.of(m)), rest);
    last = { messages: [...messages], rest, bytes };
    return bytes;
  };
}

function sameMessages<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * `items` as length-delimited fields with `tag`, then `rest`, in one buffer
 * sized up front: BinaryWriter would build each tag and length as a number
 * array and copy every item twice, which at a 100 KB answer was most of the
 * serializer's time.
 */
function frameAhead(tag: number, items: readonly Uint8Array[], rest: Uint8Array): Buffer {
  const tagSize = varintSize(tag);
  let total = rest.byteLength;
  for (const b of items) total += tagSize + varintSize(b.byteLength) + b.byteLength;
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const b of items) {
    pos = writeVarint(out, pos, tag);
    pos = writeVarint(out, pos, b.byteLength);
    out.set(b, pos);
    pos += b.byteLength;
  }
  out.set(rest, pos);
  return out;
}

const pods = new EncodedMessages(PodSandbox);
const podStatuses = new EncodedMessages(PodSandboxStatus);
const containers = new EncodedMessages(Container);
const containerStatuses = new EncodedMessages(ContainerStatus);
const images = new EncodedMessages(Image);

function withSerializers(definition: ServiceDefinition, serializers: Record<string, (response: never) => Buffer>): ServiceDefinition {
  // Every request is decoded under the wire's budget; see grpc/decode-budget.ts.
  const out: Record<string, ServiceDefinition[string]> = { ...withDecodeBudget(definition) };
  for (const [name, responseSerialize] of Object.entries(serializers)) {
    out[name] = { ...out[name]!, responseSerialize: responseSerialize as (value: unknown) => Buffer };
  }
  return out;
}

/** The generated RuntimeService definition, with the hot List/Status answers serialized from cached bytes. */
export const RUNTIME_SERVICE: ServiceDefinition = withSerializers(RuntimeServiceService, {
  listPodSandbox: serializer(ListPodSandboxResponse, 'items', 1, pods),
  podSandboxStatus: serializer(PodSandboxStatusResponse, 'status', 1, podStatuses),
  listContainers: serializer(ListContainersResponse, 'containers', 1, containers),
  containerStatus: serializer(ContainerStatusResponse, 'status', 1, containerStatuses),
  // The Stream twins send the same items in batches; each batch is serialized twice (measured by
  // dispatch, then sent), the second time returning the first's bytes.
  streamPodSandboxes: serializer(StreamPodSandboxesResponse, 'podSandboxes', 1, pods),
  streamContainers: serializer(StreamContainersResponse, 'containers', 1, containers),
});

/** The generated ImageService definition, with ListImages and ImageStatus serialized from cached bytes. */
export const IMAGE_SERVICE: ServiceDefinition = withSerializers(ImageServiceService, {
  listImages: serializer(ListImagesResponse, 'images', 1, images),
  imageStatus: serializer(ImageStatusResponse, 'image', 1, images),
  streamImages: serializer(StreamImagesResponse, 'images', 1, images),
});

/** Each List answer's cached repeated field, by RPC name. */
const LIST_ITEMS: Record<string, { field: string; cache: EncodedMessages<object> }> = {
  ListPodSandbox: { field: 'items', cache: pods as EncodedMessages<object> },
  ListContainers: { field: 'containers', cache: containers as EncodedMessages<object> },
  ListImages: { field: 'images', cache: images as EncodedMessages<object> },
};

/** Encoded bytes per event-loop turn while a list answer is prepared. */
const BYTES_PER_TURN = 1024 * 1024;

/**
 * Encodes the items of a List answer ahead, about 1 MiB per event-loop turn,
 * and returns the bytes they take in the answer (undefined for an RPC whose
 * items are not cached). The serializer then only copies cached bytes, so a
 * 16 MiB answer does not hold the loop while it is encoded, and its size is
 * known without a second encode. Stops counting once past `stopAt`.
 */
export async function encodeListItems(rpcName: string, response: unknown, stopAt: number): Promise<number | undefined> {
  const list = LIST_ITEMS[rpcName];
  const items = list && (response as Record<string, unknown> | undefined)?.[list.field];
  if (!list || !Array.isArray(items)) return undefined;
  let total = 0;
  let sinceYield = 0;
  for (const item of items as object[]) {
    const n = list.cache.of(item).byteLength;
    // tag (field 1: one byte) + length varint + the item, as frameAhead writes them
    total += 1 + varintSize(n) + n;
    if (total > stopAt) return total;
    sinceYield += n;
    if (sinceYield >= BYTES_PER_TURN) {
      sinceYield = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  return total;
}
