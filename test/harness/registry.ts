/**
 * A local OCI registry: Debian's docker-registry (distribution 2.8) on
 * 127.0.0.1:<free port>, filesystem storage in the harness tmp dir, deletes
 * enabled, optionally behind htpasswd basic auth.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { childEnv, FatalWaitError, freePort, killQuiet, pidAlive, run, sleepSync, tailFile, waitFor } from './util';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

export interface RegistryAuth {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Directory the registry owns (config, storage, log). Created if missing. */
  dir: string;
  /** Port on 127.0.0.1; a free one when omitted. */
  port?: number;
  /** Require basic auth with this user (htpasswd, bcrypt). */
  auth?: RegistryAuth;
}

export interface Registry {
  /** host:port, e.g. 127.0.0.1:5000 */
  host: string;
  port: number;
  dir: string;
  logPath: string;
  auth?: RegistryAuth;
  pid: number;
  stop(): Promise<void>;
  stopSync(): void;
}

function configYaml(dir: string, port: number, htpasswdPath?: string): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(path.join(dir, 'storage'))}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
  ];
  if (htpasswdPath) {
    lines.push('auth:', '  htpasswd:', '    realm: cri-adapter-test', `    path: ${JSON.stringify(htpasswdPath)}`);
  }
  return lines.join('\n') + '\n';
}

/** GET http://host/v2/ → status code (401 counts as "answering" when auth is on). */
export function registryPing(host: string, auth?: RegistryAuth): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = {};
    if (auth) headers.authorization = 'Basic ' + Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
    const req = http.get({ host: host.split(':')[0], port: Number(host.split(':')[1]), path: '/v2/', headers, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.setTimeout(2000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export async function startRegistry(opts: RegistryOptions): Promise<Registry> {
  const dir = opts.dir;
  fs.mkdirSync(path.join(dir, 'storage'), { recursive: true });
  const port = opts.port ?? (await freePort());
  let htpasswdPath: string | undefined;
  if (opts.auth) {
    htpasswdPath = path.join(dir, 'htpasswd');
    // distribution accepts bcrypt entries only
    await run('htpasswd', ['-B', '-b', '-c', htpasswdPath, opts.auth.username, opts.auth.password]);
  }
  const configPath = path.join(dir, 'config.yml');
  fs.writeFileSync(configPath, configYaml(dir, port, htpasswdPath));
  const logPath = path.join(dir, 'registry.log');
  const logFd = fs.openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(REGISTRY_BINARY, ['serve', configPath], {
      stdio: ['ignore', logFd, logFd],
      env: childEnv({ OTEL_TRACES_EXPORTER: 'none' }),
    });
  } finally {
    fs.closeSync(logFd);
  }
  let exited: string | undefined;
  child.on('exit', (code, sig) => {
    exited = `exited (${code ?? sig})`;
  });
  child.on('error', (e) => {
    exited = `failed to start: ${e.message}`;
  });
  const host = `127.0.0.1:${port}`;
  const pid = child.pid ?? -1;

  const stopSync = (): void => {
    if (pid > 0 && pidAlive(pid)) {
      killQuiet(pid, 'SIGTERM');
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && pidAlive(pid)) sleepSync(10);
      if (pidAlive(pid)) killQuiet(pid, 'SIGKILL');
    }
  };
  const stop = async (): Promise<void> => {
    if (exited !== undefined || pid <= 0) return;
    const done = new Promise<void>((r) => child.once('exit', () => r()));
    killQuiet(pid, 'SIGTERM');
    const t = setTimeout(() => killQuiet(pid, 'SIGKILL'), 3000);
    await done;
    clearTimeout(t);
  };

  try {
    await waitFor(
      `docker-registry on ${host}`,
      async () => {
        if (exited !== undefined) throw new FatalWaitError(`docker-registry ${exited}: ${tailFile(logPath)}`);
        const status = await registryPing(host);
        return status === 200 || status === 401;
      },
      { timeoutMs: 15_000, intervalMs: 25, onTimeout: () => tailFile(logPath) },
    );
  } catch (e) {
    stopSync();
    throw e;
  }
  return { host, port, dir, logPath, auth: opts.auth, pid, stop, stopSync };
}
