import { BinaryReader } from '@bufbuild/protobuf/wire';
import type { ServiceDefinition } from '@grpc/grpc-js';

/*
 * The one field-agnostic bound, applied while a request is decoded, before
 * any CRI code sees it. ts-proto decodes on the event loop: 100,000 labels or
 * devices in a 2-7 MiB message (well under the 16 MiB receive limit) cost
 * 40-80 ms to decode on an idle core and 140-240 ms on a loaded one, before
 * a domain check can refuse them. The reader below counts the varints the
 * generated decoders read (every field tag, every length and every varint
 * value) and gives up after DECODE_BUDGET, so refusing costs at most that
 * much decoding (about 10-40 ms measured, loaded machine). The budget is far
 * above what the domain limits let a request hold (README "Request limits").
 */

/** Varint reads a request may take to decode (a string field is 2, a map entry 6). */
export const DECODE_BUDGET = 65536;

class DecodeBudgetExceeded extends Error {}

/** What the deserializer hands on instead of a request over the budget; the dispatch wrapper answers it INVALID_ARGUMENT. */
export class RefusedRequest {
  constructor(readonly details: string) {}
}

const VARINT_READERS = ['int32', 'sint32', 'int64', 'uint64', 'sint64', 'bool', 'fixed32', 'sfixed32', 'fixed64', 'sfixed64', 'float', 'double'] as const;

class BudgetedReader extends BinaryReader {
  constructor(buf: Uint8Array, budget: number) {
    super(buf);
    let left = budget;
    const spend = () => {
      if (--left < 0) throw new DecodeBudgetExceeded();
    };
    // uint32 is an instance property of BinaryReader (tags, lengths, string and bytes lengths go through it).
    const uint32 = this.uint32;
    this.uint32 = function (this: BinaryReader) {
      spend();
      return uint32.call(this);
    };
    const self = this as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const name of VARINT_READERS) {
      const read = self[name]!;
      self[name] = function (this: unknown, ...a: unknown[]) {
        spend();
        return read.apply(this, a);
      };
    }
  }
}

/**
 * The definition with every request decoded under the budget. The generated
 * decoders take a BinaryReader where grpc-js passes a Buffer and use it as is.
 */
export function withDecodeBudget(definition: ServiceDefinition, budget = DECODE_BUDGET): ServiceDefinition {
  const out: Record<string, ServiceDefinition[string]> = {};
  for (const [name, method] of Object.entries(definition)) {
    const decode = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        // Every counted read takes at least one byte, so a request no longer than the budget
        // cannot go over it: decoded as it is (the kubelet's calls are all of this kind).
        if (bytes.length <= budget) return decode(bytes);
        try {
          return decode(new BudgetedReader(bytes, budget) as unknown as Buffer);
        } catch (err) {
          if (!(err instanceof DecodeBudgetExceeded)) throw err;
          return new RefusedRequest(
            `the request holds more than ${budget} protobuf fields and lengths, more than any CRI request within the limits needs (${bytes.length} bytes); send fewer entries`,
          );
        }
      },
    };
  }
  return out;
}
