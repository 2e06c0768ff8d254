/**
 * What a manifest request returned: an image index or an image manifest
 * (OCI or Docker schema 2), told apart by its media type, or by its fields
 * when a registry sends a generic Content-Type. Schema 1 is refused.
 */
import { FailedPreconditionError, UnavailableError } from '../../errors';
import { RegistryFailure } from './errors';
import { ImageIndex, ImageManifest, isImageIndex, isImageManifest, isIndexMediaType, isManifestMediaType, MediaTypes, SCHEMA1_MEDIA_TYPES } from './types';

export function schema1Failure(): RegistryFailure {
  return new RegistryFailure(
    FailedPreconditionError,
    'the image uses the Docker image manifest v2 schema 1 format, which is deprecated and not supported; rebuild and push it with a current Docker, buildah or similar',
  );
}

/** A manifest document and the media type it is handled as. */
export type ClassifiedManifest = { mediaType: string; json: ImageManifest | ImageIndex };

/** Infers the media type from the body when the Content-Type is generic, as some registries send. */
export function classifyManifest(raw: Buffer, headerType: string, host: string): ClassifiedManifest {
  if (SCHEMA1_MEDIA_TYPES.includes(headerType)) throw schema1Failure();
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new RegistryFailure(UnavailableError, `${host} returned a manifest that is not valid JSON (Content-Type "${headerType}")`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new RegistryFailure(UnavailableError, `${host} returned a manifest that is not a JSON object`);
  }
  if (('schemaVersion' in doc && doc.schemaVersion === 1) || 'fsLayers' in doc) throw schema1Failure();
  let mediaType = 'mediaType' in doc && typeof doc.mediaType === 'string' ? doc.mediaType : '';
  if (!mediaType && (isIndexMediaType(headerType) || isManifestMediaType(headerType))) mediaType = headerType;
  if (!mediaType) {
    if (isImageIndex(doc)) mediaType = MediaTypes.ociIndex;
    else if (isImageManifest(doc)) mediaType = MediaTypes.ociManifest;
  }
  if (SCHEMA1_MEDIA_TYPES.includes(mediaType)) throw schema1Failure();
  if (isIndexMediaType(mediaType)) {
    if (!isImageIndex(doc)) throw new RegistryFailure(FailedPreconditionError, `index from ${host} has no "manifests" list`);
    return { mediaType, json: doc };
  }
  if (isManifestMediaType(mediaType)) {
    if (!isImageManifest(doc)) {
      throw new RegistryFailure(FailedPreconditionError, `manifest from ${host} lacks a config descriptor or a layers list`);
    }
    return { mediaType, json: doc };
  }
  throw new RegistryFailure(
    FailedPreconditionError,
    `unsupported manifest media type "${mediaType || headerType || 'none'}" (supported: OCI image manifest/index, Docker manifest v2 schema 2/manifest list)`,
  );
}
