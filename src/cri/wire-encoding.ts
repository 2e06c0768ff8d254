import { BinaryWriter } from '@bufbuild/protobuf/wire';
import type { ServiceDefinition } from '@grpc/grpc-js';
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

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Serializes a response whose `field` (protobuf field number `fieldNumber`) holds cached messages. */
function serializer<R, K extends keyof R, T extends object>(
  codec: Codec<R>,
  field: K,
  fieldNumber: number,
  cache: EncodedMessages<T>,
): (response: R) => Buffer {
  const tag = (fieldNumber << 3) | 2; // length-delimited
  return (response) => {
    const value = response[field] as T | T[] | undefined;
    const writer = new BinaryWriter();
    if (Array.isArray(value)) for (const m of value) writer.uint32(tag).bytes(cache.of(m));
    else if (value !== undefined) writer.uint32(tag).bytes(cache.of(value));
    // The rest of the answer (info maps, timestamps) is encoded as usual, after the cached field.
    codec.encode({ ...response, [field]: Array.isArray(value) ? [] : undefined }, writer);
    return toBuffer(writer.finish());
  };
}

const pods = new EncodedMessages(PodSandbox);
const podStatuses = new EncodedMessages(PodSandboxStatus);
const containers = new EncodedMessages(Container);
const containerStatuses = new EncodedMessages(ContainerStatus);
const images = new EncodedMessages(Image);

function withSerializers(definition: ServiceDefinition, serializers: Record<string, (response: never) => Buffer>): ServiceDefinition {
  const out: Record<string, ServiceDefinition[string]> = { ...definition };
  for (const [name, responseSerialize] of Object.entries(serializers)) {
    out[name] = { ...definition[name]!, responseSerialize: responseSerialize as (value: unknown) => Buffer };
  }
  return out;
}

/** The generated RuntimeService definition, with the hot List/Status answers serialized from cached bytes. */
export const RUNTIME_SERVICE: ServiceDefinition = withSerializers(RuntimeServiceService, {
  listPodSandbox: serializer(ListPodSandboxResponse, 'items', 1, pods),
  podSandboxStatus: serializer(PodSandboxStatusResponse, 'status', 1, podStatuses),
  listContainers: serializer(ListContainersResponse, 'containers', 1, containers),
  containerStatus: serializer(ContainerStatusResponse, 'status', 1, containerStatuses),
});

/** The generated ImageService definition, with ListImages and ImageStatus serialized from cached bytes. */
export const IMAGE_SERVICE: ServiceDefinition = withSerializers(ImageServiceService, {
  listImages: serializer(ListImagesResponse, 'images', 1, images),
  imageStatus: serializer(ImageStatusResponse, 'image', 1, images),
});
