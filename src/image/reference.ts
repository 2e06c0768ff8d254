import { InvalidArgumentError } from '../errors';
import { quote } from '../util/bounds';

/**
 * Image references as the kubelet and crictl write them, normalised the way
 * Docker does, so an image pulled as `busybox` is stored and found again as
 * `docker.io/library/busybox:latest`.
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] path
 *
 * The image store is keyed by the canonical string, so two spellings of the
 * same image must normalise to the same string or the kubelet would pull it
 * twice and garbage-collect the wrong one.
 */

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';

/** Docker's limit applies to the name as written, before normalisation adds docker.io/library/. */
export const NAME_MAX_LENGTH = 255;
export const TAG_MAX_LENGTH = 128;

export interface ParsedReference {
  /** Registry host as used in hosts.toml lookup, e.g. `docker.io`, `127.0.0.1:5000`. */
  readonly domain: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  readonly path: string;
  readonly tag?: string;
  readonly digest?: string;
  /** `domain/path`. */
  readonly name: string;
  /** The manifest to ask the registry for: the digest when there is one, since it pins content; else the tag. */
  readonly object: string;
  /** The short form people type (`busybox:latest`, `user/app:1`, `quay.io/x/y:2`). */
  familiar(): string;
  /** Canonical form: `name[:tag][@digest]`; the key images are stored under. */
  string(): string;
}

export type ImageSpec =
  | { kind: 'reference'; reference: ParsedReference }
  | { kind: 'id'; id: string };

const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const TAG = /^[\w][\w.-]*$/;
const DIGEST = /^([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):(.*)$/;
const IMAGE_ID = /^(?:sha256:)?([a-f0-9]{64})$/;

function invalid(input: string, reason: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid image reference ${quote(input, 256)}: ${reason}`);
}

/** `sha256:<64 hex>` or bare 64 hex; returns the `sha256:`-prefixed ID, or undefined. */
export function parseImageId(input: string): string | undefined {
  const m = IMAGE_ID.exec(input);
  return m ? `sha256:${m[1]}` : undefined;
}

/**
 * Validates a digest string (`algo:hex`); returns the reason it is invalid,
 * or undefined. Only the algorithms the OCI spec registers are accepted so a
 * typo cannot produce a digest nothing will ever verify.
 */
export function digestProblem(digest: string): string | undefined {
  const m = DIGEST.exec(digest);
  if (!m) return `digest "${digest}" is not of the form <algorithm>:<hex>`;
  const [, algorithm, hex] = m;
  const want = DIGEST_HEX_LENGTH[algorithm];
  if (want === undefined) {
    return `digest algorithm "${algorithm}" is not supported (use sha256, sha384 or sha512)`;
  }
  if (!/^[a-f0-9]*$/.test(hex)) return `digest "${digest}" must be lowercase hexadecimal after "${algorithm}:"`;
  if (hex.length !== want) {
    return `digest "${digest}" has ${hex.length} hex characters; ${algorithm} needs ${want}`;
  }
  return undefined;
}

class Reference implements ParsedReference {
  constructor(
    readonly domain: string,
    readonly path: string,
    readonly tag: string | undefined,
    readonly digest: string | undefined,
  ) {}

  get name(): string {
    return `${this.domain}/${this.path}`;
  }

  get object(): string {
    // Constructed references always have one of the two; parse() guarantees it.
    return this.digest ?? this.tag ?? DEFAULT_TAG;
  }

  familiar(): string {
    let name = this.name;
    if (this.domain === DEFAULT_DOMAIN) {
      name = this.path;
      const rest = this.path.slice(OFFICIAL_REPO_PREFIX.length);
      if (this.path.startsWith(OFFICIAL_REPO_PREFIX) && !rest.includes('/')) name = rest;
    }
    return name + this.suffix();
  }

  string(): string {
    return this.name + this.suffix();
  }

  toString(): string {
    return this.string();
  }

  toJSON(): string {
    return this.string();
  }

  private suffix(): string {
    return (this.tag !== undefined ? `:${this.tag}` : '') + (this.digest !== undefined ? `@${this.digest}` : '');
  }
}

/**
 * Docker's rule for whether the first path component is a registry host:
 * it is if it looks like one (a dot or a port), is `localhost`, or has
 * capital letters (which a repository path may not have).
 */
function splitDomain(name: string): { domain: string; path: string; explicit: boolean } {
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  if (
    slash === -1 ||
    (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)
  ) {
    return { domain: DEFAULT_DOMAIN, path: name, explicit: false };
  }
  return { domain: first, path: name.slice(slash + 1), explicit: true };
}

/**
 * Parses and normalises a reference. Image IDs are refused here because
 * treating `sha256:<hex>` as repository `sha256` with a tag would silently
 * pull the wrong thing; use parseImageSpec when either is acceptable.
 */
export function parseReference(input: string): ParsedReference {
  if (typeof input !== 'string' || input === '') throw invalid(String(input ?? ''), 'it is empty');
  if (parseImageId(input) !== undefined) {
    throw invalid(input, 'this is an image ID, not a reference; refer to an image by name to pull it');
  }
  if (/\s/.test(input)) throw invalid(input, 'it contains whitespace');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) {
    throw invalid(input, 'a reference has no URL scheme; drop the "scheme://" prefix');
  }

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (digest.includes('@')) throw invalid(input, 'it has more than one "@"');
    const problem = digestProblem(digest);
    if (problem) throw invalid(input, problem);
  }

  // A colon after the last slash starts the tag; one before it is a port.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (tag === '') throw invalid(input, 'the tag after ":" is empty');
    if (!TAG.test(tag)) {
      throw invalid(input, `tag "${tag}" may contain only letters, digits, "_", "." and "-", and may not start with "." or "-"`);
    }
    if (tag.length > TAG_MAX_LENGTH) {
      throw invalid(input, `tag is ${tag.length} characters long; the limit is ${TAG_MAX_LENGTH}`);
    }
  }

  if (rest === '') throw invalid(input, 'the repository name is empty');
  if (rest.length > NAME_MAX_LENGTH) {
    throw invalid(input, `repository name is ${rest.length} characters long; the limit is ${NAME_MAX_LENGTH}`);
  }

  const split = splitDomain(rest);
  let { domain, path } = split;
  if (split.explicit && !DOMAIN.test(domain)) {
    throw invalid(input, `registry host "${domain}" is not a valid host name, IP address or host:port`);
  }
  if (path === '') throw invalid(input, `the repository path after "${domain}/" is empty`);
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_REPO_PREFIX + path;

  if (path.toLowerCase() !== path) {
    throw invalid(input, `repository name "${path}" must be lowercase`);
  }
  for (const component of path.split('/')) {
    if (component === '') throw invalid(input, 'the repository path has an empty component ("//", or a leading or trailing "/")');
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(
        input,
        `path component "${component}" may contain only a-z, 0-9 and the separators ".", "_", "__" or "-", not at its start or end`,
      );
    }
  }

  // The kubelet sends bare names and expects the latest tag; a digest alone pins the content.
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return new Reference(domain, path, tag, digest);
}

/** Accepts either an image ID or a reference, which is what CRI image lookups allow. */
export function parseImageSpec(input: string): ImageSpec {
  const id = parseImageId(input);
  if (id !== undefined) return { kind: 'id', id };
  return { kind: 'reference', reference: parseReference(input) };
}

/** The same repository pinned to a digest (tag dropped): what an image's repo digest is. */
export function withDigest(ref: ParsedReference, digest: string): ParsedReference {
  const problem = digestProblem(digest);
  if (problem) throw new InvalidArgumentError(`cannot pin ${ref.string()} to a digest: ${problem}`);
  return new Reference(ref.domain, ref.path, undefined, digest);
}

/** The same repository with a tag and no digest. */
export function withTag(ref: ParsedReference, tag: string): ParsedReference {
  if (!TAG.test(tag) || tag.length > TAG_MAX_LENGTH) {
    throw new InvalidArgumentError(`cannot tag ${ref.name} as ${quote(tag)}: not a valid tag`);
  }
  return new Reference(ref.domain, ref.path, tag, undefined);
}
