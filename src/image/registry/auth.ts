import { createHash } from 'crypto';
import { InvalidArgumentError, UnavailableError } from '../../errors';
import { errorBodyDetail, RegistryAuthError, RegistryFailure } from './errors';

/**
 * Registry authentication: anonymous, HTTP basic, and the Docker token
 * protocol (a 401 with `WWW-Authenticate: Bearer realm=…` sends us to a
 * token service; the token is then sent as `Authorization: Bearer`).
 */

/** Mirrors CRI's AuthConfig; the caller maps the protobuf message onto this. */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64 of "username:password". */
  auth?: string;
  /** The registry these credentials are for; when set they go nowhere else. */
  serverAddress?: string;
  /** OAuth refresh token, traded at the token service for an access token. */
  identityToken?: string;
  /** A bearer token sent to the registry as is. */
  registryToken?: string;
}

export interface Credentials {
  username?: string;
  password?: string;
  identityToken?: string;
  registryToken?: string;
  /** Stable fingerprint so cached tokens are never shared between different credentials. */
  id: string;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * Normalises CRI credentials. Explicit username/password win over `auth`,
 * as in containerd; a malformed `auth` is the caller's mistake, not the
 * registry's, so it is an InvalidArgument naming the field.
 */
export function toCredentials(auth: AuthConfig | undefined): Credentials | undefined {
  if (!auth) return undefined;
  let { username, password } = auth;
  if (!username && auth.auth) {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0 || !/^[A-Za-z0-9+/=\s_-]+$/.test(auth.auth)) {
      throw new InvalidArgumentError(
        `pull credentials${auth.serverAddress ? ` for ${auth.serverAddress}` : ''}: the "auth" field is not base64 of "username:password"`,
      );
    }
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const creds: Omit<Credentials, 'id'> = {};
  if (username) creds.username = username;
  if (password) creds.password = password;
  if (auth.identityToken) creds.identityToken = auth.identityToken;
  if (auth.registryToken) creds.registryToken = auth.registryToken;
  if (Object.keys(creds).length === 0) return undefined;
  const id = createHash('sha256').update(JSON.stringify(creds)).digest('hex').slice(0, 32);
  return { ...creds, id };
}

function hostOf(address: string): string {
  const s = address.trim();
  try {
    return new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `https://${s}`).host.toLowerCase();
  } catch {
    return s.toLowerCase();
  }
}

/** Docker Hub answers to several names; treat them as one host. */
function canonicalHost(host: string): string {
  const h = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(h) ? 'docker.io' : h;
}

/**
 * Whether credentials may be offered to an endpoint. They belong to the
 * registry the reference names (or to serverAddress, when given), so they
 * go to its upstream endpoint, or to an endpoint on that very host, but
 * not to mirrors: a mirror is another party, and handing it the
 * upstream's password by default would leak it wherever an operator
 * points a mirror.
 */
export function credentialsApply(
  auth: AuthConfig | undefined,
  endpoint: { host: string; registry: string; mirror: boolean },
): boolean {
  if (!auth) return false;
  const target = canonicalHost(endpoint.host);
  const registry = canonicalHost(endpoint.registry);
  const isRegistryItself = !endpoint.mirror || target === registry;
  if (auth.serverAddress) {
    const server = canonicalHost(hostOf(auth.serverAddress));
    return server === target || (server === registry && isRegistryItself);
  }
  return isRegistryItself;
}

/**
 * Parses `WWW-Authenticate`, which may hold several challenges
 * (`Bearer realm="…",service="…", Basic realm="…"`) and quoted values
 * containing commas.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: Challenge[] = [];
  let i = 0;
  const n = text.length;
  const skip = (re: RegExp) => {
    while (i < n && re.test(text[i])) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(text[i])) i++;
    return text.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skip(/[\s,]/);
    if (i >= n) break;
    const start = i;
    const name = token();
    if (name === '') {
      i++; // unexpected character; resynchronise
      continue;
    }
    skip(/[ \t]/);
    if (text[i] === '=' && current) {
      i++;
      skip(/[ \t]/);
      let value = '';
      if (text[i] === '"') {
        i++;
        while (i < n && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < n) i++;
          value += text[i++];
        }
        i++;
      } else {
        const vs = i;
        while (i < n && text[i] !== ',' && !/\s/.test(text[i])) i++;
        value = text.slice(vs, i);
      }
      current.params[name.toLowerCase()] = value;
      continue;
    }
    if (text[i] === '=' && !current) {
      i = start + name.length + 1; // a parameter without a scheme; ignore it
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    out.push(current);
    // A token68 (e.g. "Negotiate abc==") is one opaque word, "=" only as padding; skip it.
    const t68 = /^[ \t]*[A-Za-z0-9._~+/-]+=*[ \t]*(?:,|$)/.exec(text.slice(i));
    if (t68) i += t68[0].length;
  }
  return out;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

export interface TokenHttpRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: Buffer;
}

export interface TokenHttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Performs a token-service request with the endpoint's TLS settings; supplied by the client. */
export type TokenSender = (req: TokenHttpRequest) => Promise<TokenHttpResponse>;

export interface AuthorizeContext {
  /** Host the 401 came from. */
  host: string;
  repository: string;
  credentials?: Credentials;
  /** The Authorization header the refused request carried, if any. */
  sentAuthorization?: string;
  send: TokenSender;
}

export interface AuthenticatorOptions {
  now?: () => number;
  /** Lifetime assumed when the token service gives none; the token spec says 60 s. */
  defaultTokenTtlSeconds?: number;
  clientId?: string;
}

const MAX_CACHED_TOKENS = 1024;

function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64')}`;
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

function describeStatus(res: TokenHttpResponse): string {
  const detail = errorBodyDetail(res.body);
  return `HTTP ${res.status}${detail ? ` (${detail})` : ''}`;
}

/**
 * Why a registry still answered 401 after its challenge was answered (or
 * could not be): names whose credentials were refused, or that none were
 * sent, with the registry's own explanation from the body or, for HEAD,
 * which has none, from the Bearer challenge's error fields.
 */
export function refusedAccessMessage(
  creds: Credentials | undefined,
  challenge: string | string[] | undefined,
  body: Buffer,
  repository: string,
): string {
  const bearer = parseChallenges(challenge).find((c) => c.scheme === 'bearer');
  const detail = [errorBodyDetail(body), [bearer?.params.error, bearer?.params.error_description].filter(Boolean).join(': ')]
    .filter(Boolean)
    .join('; ');
  const status = `HTTP 401${detail ? `: ${detail}` : ''}`;
  const who = creds?.registryToken
    ? 'the registry token supplied with the pull'
    : creds?.identityToken
      ? 'the identity token supplied with the pull'
      : creds?.username
        ? `the credentials for user "${creds.username}"`
        : undefined;
  return who
    ? `the registry refused ${who} (${status}); check the imagePullSecret`
    : `the registry refused anonymous access (${status}); the repository ${repository} does not exist or needs credentials (an imagePullSecret)`;
}

/**
 * Holds what was learnt from challenges: tokens per (host, scope,
 * credentials), and which hosts want basic auth, so later requests carry
 * credentials up front instead of paying a 401 round trip each time.
 */
export class Authenticator {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();
  private readonly basicHosts = new Set<string>();
  private readonly now: () => number;
  private readonly defaultTtl: number;
  private readonly clientId: string;

  constructor(opts: AuthenticatorOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.defaultTtl = opts.defaultTokenTtlSeconds ?? 60;
    this.clientId = opts.clientId ?? 'cri-adapter';
  }

  private key(host: string, scope: string, creds?: Credentials): string {
    return `${host}\n${scope}\n${creds?.id ?? 'anonymous'}`;
  }

  /** The Authorization header to send before any challenge, if one is known to be wanted. */
  preemptive(host: string, repository: string, creds?: Credentials): string | undefined {
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    const cached = this.tokens.get(this.key(host, pullScope(repository), creds));
    if (cached && cached.expiresAt > this.now()) return `Bearer ${cached.token}`;
    if (creds?.username && this.basicHosts.has(host)) return basicHeader(creds);
    return undefined;
  }

  /** Drops cached state for a host after the registry rejected it, so the retry starts clean. */
  forget(host: string, repository: string, creds?: Credentials): void {
    this.tokens.delete(this.key(host, pullScope(repository), creds));
  }

  /**
   * Answers a 401: returns the Authorization header for the retry, or
   * throws a RegistryFailure saying why no credentials can be offered.
   */
  async authorize(wwwAuthenticate: string | string[] | undefined, ctx: AuthorizeContext): Promise<string> {
    const creds = ctx.credentials;
    if (creds?.registryToken) {
      // The registry already saw this token and refused it.
      throw new RegistryFailure(RegistryAuthError, 'the registry token supplied with the pull was refused (HTTP 401)', {
        status: 401,
      });
    }
    const challenges = parseChallenges(wwwAuthenticate);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) return `Bearer ${await this.bearerToken(bearer, ctx)}`;
    if (basic) {
      if (!creds?.username) {
        throw new RegistryFailure(
          RegistryAuthError,
          'the registry requires a username and password (HTTP 401, Basic) and none were supplied; add an imagePullSecret for it',
          { status: 401 },
        );
      }
      this.basicHosts.add(ctx.host);
      return basicHeader(creds);
    }
    const offered = challenges.map((c) => c.scheme).join(', ');
    throw new RegistryFailure(
      RegistryAuthError,
      offered
        ? `the registry asks for unsupported authentication (${offered}); only Basic and Bearer are implemented`
        : 'the registry answered 401 without a WWW-Authenticate challenge, so there is no way to authenticate',
      { status: 401 },
    );
  }

  private async bearerToken(challenge: Challenge, ctx: AuthorizeContext): Promise<string> {
    const realm = challenge.params.realm;
    if (!realm) {
      throw new RegistryFailure(UnavailableError, 'the registry sent a Bearer challenge without a realm (token service URL)');
    }
    const own = pullScope(ctx.repository);
    const scopes = new Set((challenge.params.scope ?? '').split(' ').filter(Boolean));
    scopes.add(own);
    const scopeList = [...scopes].sort();
    const key = this.key(ctx.host, scopeList.join(' '), ctx.credentials);
    const ownKey = this.key(ctx.host, own, ctx.credentials);

    // A concurrent request may have fetched a token since this one was sent;
    // reuse it unless it is the very token the registry just refused.
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now() && ctx.sentAuthorization !== `Bearer ${cached.token}`) {
      if (ownKey !== key) this.store(ownKey, cached);
      return cached.token;
    }
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.fetchToken(realm, challenge.params.service, scopeList, ctx).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    const token = await pending;
    this.store(key, token);
    if (ownKey !== key) this.store(ownKey, token);
    return token.token;
  }

  private store(key: string, token: CachedToken): void {
    if (this.tokens.size >= MAX_CACHED_TOKENS) {
      const now = this.now();
      for (const [k, v] of this.tokens) if (v.expiresAt <= now) this.tokens.delete(k);
      if (this.tokens.size >= MAX_CACHED_TOKENS) this.tokens.delete(this.tokens.keys().next().value as string);
    }
    this.tokens.set(key, token);
  }

  private async fetchToken(realm: string, service: string | undefined, scopes: string[], ctx: AuthorizeContext): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryFailure(UnavailableError, `the registry's token service realm "${realm}" is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RegistryFailure(UnavailableError, `the registry's token service realm "${realm}" is not an http(s) URL`);
    }
    const creds = ctx.credentials;
    const tokenHost = url.host;
    let res: TokenHttpResponse | undefined;

    if (creds?.identityToken) {
      const form = new URLSearchParams();
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', creds.identityToken);
      if (service) form.set('service', service);
      form.set('scope', scopes.join(' '));
      form.set('client_id', this.clientId);
      res = await ctx.send({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
      });
      // Some token services only implement the GET flow; fall back to it as containerd does.
      if ([400, 404, 405].includes(res.status) && creds.username) res = undefined;
    }
    if (!res) {
      const getUrl = new URL(url);
      if (service) getUrl.searchParams.set('service', service);
      for (const s of scopes) getUrl.searchParams.append('scope', s);
      if (creds?.username) getUrl.searchParams.set('account', creds.username);
      const headers: Record<string, string> = {};
      if (creds?.username) headers.authorization = basicHeader(creds);
      res = await ctx.send({ method: 'GET', url: getUrl, headers });
    }

    if (res.status === 401 || res.status === 403) {
      const how = creds?.identityToken
        ? 'the identity token'
        : creds?.username
          ? `the credentials for user "${creds.username}"`
          : 'an anonymous request';
      throw new RegistryFailure(
        RegistryAuthError,
        `token service ${tokenHost} refused ${how} for ${scopes.join(' ')}: ${describeStatus(res)}`,
        { status: res.status },
      );
    }
    if (res.status < 200 || res.status >= 300) {
      throw new RegistryFailure(UnavailableError, `token service ${tokenHost} failed: ${describeStatus(res)}`, { status: res.status });
    }
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new RegistryFailure(UnavailableError, `token service ${tokenHost} returned a response that is not JSON`);
    }
    const token = typeof doc.access_token === 'string' && doc.access_token ? doc.access_token : doc.token;
    if (typeof token !== 'string' || token === '') {
      throw new RegistryFailure(UnavailableError, `token service ${tokenHost} returned no token`);
    }
    const ttl = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : this.defaultTtl;
    // Renew a little early so a token does not expire between check and use.
    const margin = Math.min(5000, ttl * 100);
    return { token, expiresAt: this.now() + ttl * 1000 - margin };
  }
}
