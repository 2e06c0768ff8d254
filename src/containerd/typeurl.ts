import type { Any } from '../gen/google/protobuf/any';
import { Options as RuncOptions } from '../gen/containerd/runc/options/oci';

// containerd identifies JSON-encoded OCI types by these URLs (its typeurl registry).
export const OCI_SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
export const OCI_PROCESS_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
export const OCI_LINUX_RESOURCES_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources';
export const RUNC_OPTIONS_TYPE_URL = 'containerd.runc.v1.Options';

export function packJson(typeUrl: string, value: unknown): Any {
  return { typeUrl, value: Buffer.from(JSON.stringify(value)) };
}

export function unpackJson<T>(any: Any | undefined): T | undefined {
  if (!any) return undefined;
  return JSON.parse(Buffer.from(any.value).toString('utf8')) as T;
}

export function packRuncOptions(opts: { root?: string; systemdCgroup?: boolean; binaryName?: string }): Any {
  const message = RuncOptions.fromPartial({
    root: opts.root ?? '',
    systemdCgroup: opts.systemdCgroup ?? false,
    binaryName: opts.binaryName ?? '',
  });
  return { typeUrl: RUNC_OPTIONS_TYPE_URL, value: Buffer.from(RuncOptions.encode(message).finish()) };
}
