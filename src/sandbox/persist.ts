import type { CallContext } from '../containerd/call';
import { updateContainerFields } from '../containerd/containers';
import { EXTENSIONS, METADATA_TYPE_URLS } from '../containerd/labels';
import { OCI_SPEC_TYPE_URL, packJson } from '../containerd/typeurl';
import type { SandboxContext } from './context';
import { SandboxRecord, toMetadata } from './model';

/**
 * Writes the record's durable part back to the infra container (the store
 * of record), and its OCI spec too when that changed, in one update.
 */
export async function persistSandbox(
  ctx: SandboxContext,
  record: SandboxRecord,
  opts: { spec?: boolean } = {},
  call?: CallContext,
): Promise<void> {
  const withSpec = opts.spec === true && record.spec !== undefined;
  await updateContainerFields(
    ctx.conn,
    record.id,
    {
      ...(withSpec ? { spec: packJson(OCI_SPEC_TYPE_URL, record.spec) } : {}),
      extensions: { [EXTENSIONS.sandboxMetadata]: packJson(METADATA_TYPE_URLS.sandbox, toMetadata(record)) },
    },
    [...(withSpec ? ['spec'] : []), `extensions.${EXTENSIONS.sandboxMetadata}`],
    call,
  );
}
