import type { AuthConfig as CriAuthConfig, Image } from '../gen/runtime/v1/api';
import type { AuthConfig } from '../image/registry';
import type { ImageEntry } from '../image/store';
import { memoByRecord } from '../util/memo';

/**
 * The image's User as the kubelet wants it: a numeric user becomes uid (the
 * kubelet checks runAsNonRoot against it), a name becomes username; a
 * group part is not the CRI's business here.
 */
export function imageUser(user: string | undefined): { uid?: bigint; username: string } {
  const name = (user ?? '').split(':')[0]!;
  if (name === '') return { username: '' };
  if (/^\d+$/.test(name)) return { uid: BigInt(name), username: '' };
  return { username: name };
}

/** Reused until the pinned flag or a field it shows changes (the store replaces those arrays, never edits them). */
export const toCriImage = memoByRecord(
  (entry: ImageEntry, pinned: boolean) => [pinned, entry.repoTags, entry.repoDigests, entry.size, entry.config],
  (entry: ImageEntry, pinned: boolean): Image => {
  const user = imageUser(entry.config.config?.User);
  return {
    id: entry.id,
    repoTags: entry.repoTags,
    repoDigests: entry.repoDigests,
    size: BigInt(entry.size),
    uid: user.uid === undefined ? undefined : { value: user.uid },
    username: user.username,
    spec: { image: entry.id, annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' },
    pinned,
  };
  },
);

/** CRI sends empty strings for unset fields; the registry client wants them absent. */
export function toAuthConfig(auth: CriAuthConfig | undefined): AuthConfig | undefined {
  if (!auth) return undefined;
  const pick = (v: string) => (v === '' ? undefined : v);
  const out: AuthConfig = {
    username: pick(auth.username),
    password: pick(auth.password),
    auth: pick(auth.auth),
    serverAddress: pick(auth.serverAddress),
    identityToken: pick(auth.identityToken),
    registryToken: pick(auth.registryToken),
  };
  return Object.values(out).some((v) => v !== undefined) ? out : undefined;
}
