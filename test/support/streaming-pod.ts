import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ContainerConfig, DeepPartial, PodSandboxConfig, PullImageRequest, RunPodSandboxRequest } from '../../src/gen/runtime/v1/api';
import type { HarnessDescription } from '../harness';
import type { AdapterProcess } from './adapter-process';
import { startHarnessAdapter } from './harness-adapter';
import { startContainerIn } from './pod-containers';
import { freePort } from '../harness/util';

/** kubectl where it is installed (the suites that drive it skip without it). */
export const KUBECTL = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => existsSync(p));

export interface ExecFlags {
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  tty?: boolean;
}

/**
 * One adapter with one pod of two busybox containers, the fixture both
 * streaming suites (SPDY and WebSocket) run against: `sleeper` to exec
 * into, `web` serving /index.html on port 8080 for port-forward.
 */
export interface StreamingPod {
  adapter: AdapterProcess;
  dir: string;
  podId: string;
  podConfig: PodSandboxConfig;
  sleeper: string;
  web: string;
  /** A busybox container in the pod, logging to `<name>.log`. */
  startContainer(name: string, command: string[], extra?: DeepPartial<ContainerConfig>): Promise<string>;
  /** The URL of an Exec in the sleeper; stderr defaults to on unless a TTY merges it. */
  execUrl(cmd: string[], flags?: ExecFlags): Promise<string>;
  /** The exec FIFOs still under the state dir (none once every exec is cleaned up). */
  execFifos(): number;
  /** Starts a new adapter process on the same state dir (after a test stopped this one). */
  restartAdapter(): Promise<void>;
  close(): Promise<void>;
}

export async function startStreamingPod(h: HarnessDescription, opts: { namespace: string; name: string }): Promise<StreamingPod> {
  const dir = mkdtempSync(`/tmp/cri-adapter-${opts.name}-`);
  const adapter = await startHarnessAdapter(h, { namespace: opts.namespace, dir });
  await adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
  const podConfig = PodSandboxConfig.fromPartial({
    metadata: { name: opts.name, namespace: 'it', uid: `${opts.name}-1` },
    logDirectory: path.join(dir, 'logs'),
    linux: {},
  });
  const { podSandboxId: podId } = await adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: podConfig }));
  // Methods go through `pod.adapter`: a test may stop the adapter and start another on the same dir.
  const startContainer = (name: string, command: string[], extra: DeepPartial<ContainerConfig> = {}) =>
    startContainerIn(pod.adapter.client, { id: podId, config: podConfig }, h.images.busybox, name, command, { logPath: `${name}.log`, ...extra });
  const pod: StreamingPod = {
    adapter,
    dir,
    podId,
    podConfig,
    sleeper: '',
    web: '',
    startContainer,
    async execUrl(cmd, flags = {}) {
      const { url } = await pod.adapter.client.runtime.exec({
        containerId: pod.sleeper,
        cmd,
        stdin: flags.stdin ?? false,
        stdout: flags.stdout ?? true,
        stderr: flags.stderr ?? !flags.tty,
        tty: flags.tty ?? false,
      });
      return url;
    },
    execFifos() {
      const fifoDir = path.join(dir, 'state', 'fifo');
      return existsSync(fifoDir) ? readdirSync(fifoDir).filter((f) => f.includes('exec-')).length : 0;
    },
    async restartAdapter() {
      pod.adapter = await startHarnessAdapter(h, { namespace: opts.namespace, dir });
    },
    async close() {
      await pod.adapter.client.runtime.stopPodSandbox({ podSandboxId: podId }).catch(() => undefined);
      await pod.adapter.client.runtime.removePodSandbox({ podSandboxId: podId }).catch(() => undefined);
      await pod.adapter.stop();
    },
  };
  pod.sleeper = await startContainer('sleeper', ['sleep', '3600']);
  pod.web = await startContainer('web', ['sh', '-c', 'mkdir -p /www && echo hello-from-the-pod > /www/index.html && exec httpd -f -p 8080 -h /www']);
  return pod;
}

/** Runs `kubectl <args> attach -i ...` with one line on stdin; resolves with what it printed and its exit code. */
export async function kubectlAttachLine(args: string[], env: NodeJS.ProcessEnv, line: string): Promise<{ out: string; code: number | null }> {
  const child = execFile(KUBECTL!, args, { env, timeout: 30_000 });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stdin!.end(line);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { out, code };
}

/**
 * Runs `kubectl <args> port-forward <pod> <local>:8080` and waits until the
 * pod's web page comes through it (up to 10 s), then hands the local port to
 * `check`; kubectl is killed afterwards whatever happened.
 */
export async function throughKubectlPortForward(
  args: (local: number) => string[],
  env: NodeJS.ProcessEnv,
  check: (local: number, firstBody: string) => Promise<void>,
): Promise<void> {
  const local = await freePort();
  const child = execFile(KUBECTL!, args(local), { env });
  try {
    let body = '';
    for (let i = 0; i < 50 && !body.includes('hello-from-the-pod'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      body = await fetch(`http://127.0.0.1:${local}/index.html`).then((r) => r.text()).catch(() => '');
    }
    await check(local, body);
  } finally {
    child.kill();
  }
}
