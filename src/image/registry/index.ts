/**
 * The registry side of image pulls. The containerd-side puller needs only
 * ImageSource (resolveImage + fetchManifest + fetchBlob) and the types;
 * the rest is exported for tests and diagnostics.
 */
export { RegistryClient } from './client';
export type {
  BlobOptions,
  BlobStream,
  FetchedManifest,
  ImageSource,
  PullOptions,
  RegistryClientOptions,
  ResolvedDescriptor,
  ResolvedImage,
} from './client';
export { Authenticator, credentialsApply, parseChallenges, toCredentials } from './auth';
export type { AuthConfig, Challenge, Credentials } from './auth';
export { DigestMismatchError, RegistryAuthError } from './errors';
export { defaultUpstream, hostDirCandidates, loadEndpoints, loadHostsConfig, parseHostsToml } from './hosts';
export type { Capability, ClientCertificate, HostsConfig, RegistryEndpoint, TlsSettings } from './hosts';
export { formatPlatform, nodePlatform, normalizePlatform, platformRank, selectPlatform } from './platform';
export * from './types';
