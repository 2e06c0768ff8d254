import { InvalidArgumentError } from '../../../src/errors';
import {
  Authenticator,
  credentialsApply,
  parseChallenges,
  toCredentials,
  TokenHttpRequest,
  TokenHttpResponse,
} from '../../../src/image/registry/auth';
import { RegistryAuthError, RegistryFailure } from '../../../src/image/registry/errors';

describe('parseChallenges', () => {
  test('a Docker Hub style Bearer challenge', () => {
    expect(
      parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'),
    ).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
      },
    ]);
  });

  test('several challenges, spaces, unquoted values, commas inside quotes, escapes', () => {
    expect(
      parseChallenges('Basic realm="a, b", Bearer realm=https://t.example/token , service = "s\\"q" ,scope="x:y:pull,push"'),
    ).toEqual([
      { scheme: 'basic', params: { realm: 'a, b' } },
      { scheme: 'bearer', params: { realm: 'https://t.example/token', service: 's"q', scope: 'x:y:pull,push' } },
    ]);
  });

  test('header arrays, token68 and bare schemes', () => {
    expect(parseChallenges(['Negotiate abc==', 'Bearer realm="r"'])).toEqual([
      { scheme: 'negotiate', params: {} },
      { scheme: 'bearer', params: { realm: 'r' } },
    ]);
    expect(parseChallenges('Basic')).toEqual([{ scheme: 'basic', params: {} }]);
    expect(parseChallenges(undefined)).toEqual([]);
    expect(parseChallenges('')).toEqual([]);
  });
});

describe('toCredentials', () => {
  test('username/password, or auth as base64 user:pass (passwords may contain ":")', () => {
    expect(toCredentials({ username: 'u', password: 'p' })).toMatchObject({ username: 'u', password: 'p' });
    const fromAuth = toCredentials({ auth: Buffer.from('user:pa:ss').toString('base64') });
    expect(fromAuth).toMatchObject({ username: 'user', password: 'pa:ss' });
    // Explicit fields win over `auth`, as in containerd.
    expect(toCredentials({ username: 'a', password: 'b', auth: Buffer.from('c:d').toString('base64') })).toMatchObject({
      username: 'a',
      password: 'b',
    });
  });

  test('empty config is anonymous; tokens are kept; ids differ per secret', () => {
    expect(toCredentials(undefined)).toBeUndefined();
    expect(toCredentials({})).toBeUndefined();
    expect(toCredentials({ serverAddress: 'r.example' })).toBeUndefined();
    expect(toCredentials({ identityToken: 'i' })).toMatchObject({ identityToken: 'i' });
    expect(toCredentials({ registryToken: 't' })).toMatchObject({ registryToken: 't' });
    const a = toCredentials({ username: 'u', password: 'p1' })!;
    const b = toCredentials({ username: 'u', password: 'p2' })!;
    expect(a.id).not.toBe(b.id);
    expect(a.id).toBe(toCredentials({ username: 'u', password: 'p1' })!.id);
  });

  test('malformed auth is InvalidArgument', () => {
    expect(() => toCredentials({ auth: Buffer.from('no-colon').toString('base64') })).toThrow(InvalidArgumentError);
    expect(() => toCredentials({ auth: '!!!', serverAddress: 'r.example' })).toThrow(/for r.example: the "auth" field/);
  });
});

describe('credentialsApply', () => {
  const upstream = { host: 'registry-1.docker.io', registry: 'docker.io', mirror: false };
  const mirror = { host: 'mirror.example', registry: 'docker.io', mirror: true };

  test('without serverAddress: the registry itself, not mirrors', () => {
    expect(credentialsApply({ username: 'u', password: 'p' }, upstream)).toBe(true);
    expect(credentialsApply({ username: 'u', password: 'p' }, mirror)).toBe(false);
    expect(credentialsApply(undefined, upstream)).toBe(false);
    // A [host] entry that is the registry itself under another name is not a third party.
    expect(credentialsApply({ username: 'u' }, { host: 'registry-1.docker.io', registry: 'docker.io', mirror: true })).toBe(true);
    expect(credentialsApply({ username: 'u' }, { host: 'r.example', registry: 'r.example', mirror: true })).toBe(true);
  });

  test('with serverAddress: only that host; Docker Hub names are one host', () => {
    expect(credentialsApply({ serverAddress: 'https://index.docker.io/v1/' }, upstream)).toBe(true);
    expect(credentialsApply({ serverAddress: 'docker.io' }, upstream)).toBe(true);
    expect(credentialsApply({ serverAddress: 'quay.io' }, upstream)).toBe(false);
    expect(credentialsApply({ serverAddress: 'mirror.example' }, mirror)).toBe(true);
    expect(credentialsApply({ serverAddress: 'https://r.example:5000' }, { host: 'r.example:5000', registry: 'r.example:5000', mirror: false })).toBe(true);
    expect(credentialsApply({ serverAddress: 'r.example' }, { host: 'r.example:5000', registry: 'r.example:5000', mirror: false })).toBe(false);
    // serverAddress naming the registry covers its configured upstream, wherever hosts.toml points it.
    expect(credentialsApply({ serverAddress: 'r.example' }, { host: 'internal:8443', registry: 'r.example', mirror: false })).toBe(true);
    expect(credentialsApply({ serverAddress: 'r.example' }, { host: 'internal:8443', registry: 'r.example', mirror: true })).toBe(false);
  });
});

describe('Authenticator', () => {
  function fakeTokenService(opts: { expiresIn?: number; status?: number; delayMs?: number } = {}) {
    const calls: TokenHttpRequest[] = [];
    let n = 0;
    const send = async (req: TokenHttpRequest): Promise<TokenHttpResponse> => {
      calls.push(req);
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      if (opts.status) return { status: opts.status, headers: {}, body: Buffer.from('{"details":"nope"}') };
      const doc: Record<string, unknown> = { access_token: `t${++n}` };
      if (opts.expiresIn) doc.expires_in = opts.expiresIn;
      return { status: 200, headers: {}, body: Buffer.from(JSON.stringify(doc)) };
    };
    return { calls, send };
  }
  const challenge = 'Bearer realm="https://auth.example/token",service="svc"';

  test('requests the challenge scope plus the pull scope, and caches per host and scope', async () => {
    let now = 0;
    const auth = new Authenticator({ now: () => now });
    const svc = fakeTokenService({ expiresIn: 120 });
    const ctx = { host: 'r.example', repository: 'team/app', send: svc.send };
    const header = await auth.authorize(`${challenge},scope="repository:other/base:pull"`, ctx);
    expect(header).toBe('Bearer t1');
    const url = svc.calls[0].url;
    expect(url.origin + url.pathname).toBe('https://auth.example/token');
    expect(url.searchParams.getAll('scope')).toEqual(['repository:other/base:pull', 'repository:team/app:pull']);
    expect(url.searchParams.get('service')).toBe('svc');
    expect(auth.preemptive('r.example', 'team/app')).toBe('Bearer t1');
    expect(auth.preemptive('r.example', 'team/other')).toBeUndefined();
    expect(auth.preemptive('other.example', 'team/app')).toBeUndefined();
    now = 116_000;
    expect(auth.preemptive('r.example', 'team/app')).toBeUndefined();
  });

  test('concurrent challenges share one token request', async () => {
    const auth = new Authenticator();
    const svc = fakeTokenService({ delayMs: 30 });
    const ctx = { host: 'r.example', repository: 'a/b', send: svc.send };
    const headers = await Promise.all([1, 2, 3, 4].map(() => auth.authorize(challenge, ctx)));
    expect(headers).toEqual(['Bearer t1', 'Bearer t1', 'Bearer t1', 'Bearer t1']);
    expect(svc.calls).toHaveLength(1);
  });

  test('a token the registry refused is not offered again', async () => {
    const auth = new Authenticator();
    const svc = fakeTokenService();
    const ctx = { host: 'r.example', repository: 'a/b', send: svc.send };
    expect(await auth.authorize(challenge, ctx)).toBe('Bearer t1');
    expect(await auth.authorize(challenge, { ...ctx, sentAuthorization: 'Bearer t1' })).toBe('Bearer t2');
    // A request sent before t2 existed may use it without a new fetch.
    expect(await auth.authorize(challenge, { ...ctx, sentAuthorization: undefined })).toBe('Bearer t2');
    expect(svc.calls).toHaveLength(2);
  });

  test('Basic challenge with credentials; remembered per host', async () => {
    const auth = new Authenticator();
    const creds = toCredentials({ username: 'u', password: 'p' })!;
    const ctx = { host: 'r.example', repository: 'a/b', credentials: creds, send: fakeTokenService().send };
    expect(auth.preemptive('r.example', 'a/b', creds)).toBeUndefined();
    expect(await auth.authorize('Basic realm="x"', ctx)).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(auth.preemptive('r.example', 'x/y', creds)).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(auth.preemptive('r.example', 'x/y', undefined)).toBeUndefined();
  });

  test('token service refusal and unusable challenges are RegistryFailures with reasons', async () => {
    const auth = new Authenticator();
    const refused = fakeTokenService({ status: 401 });
    const creds = toCredentials({ username: 'u', password: 'bad' });
    const err = await auth
      .authorize(challenge, { host: 'r.example', repository: 'a/b', credentials: creds, send: refused.send })
      .then(
        () => undefined,
        (e: unknown) => e as RegistryFailure,
      );
    expect(err).toBeInstanceOf(RegistryFailure);
    expect(err!.errorClass).toBe(RegistryAuthError);
    expect(err!.detail).toBe('token service auth.example refused the credentials for user "u" for repository:a/b:pull: HTTP 401 (nope)');

    const ctx = { host: 'r.example', repository: 'a/b', send: fakeTokenService().send };
    await expect(auth.authorize('Negotiate', ctx)).rejects.toThrow(/unsupported authentication \(negotiate\)/);
    await expect(auth.authorize(undefined, ctx)).rejects.toThrow(/without a WWW-Authenticate challenge/);
    await expect(auth.authorize('Bearer service="x"', ctx)).rejects.toThrow(/without a realm/);
    await expect(auth.authorize('Bearer realm="ftp://x/token"', ctx)).rejects.toThrow(/not an http\(s\) URL/);
  });
});
