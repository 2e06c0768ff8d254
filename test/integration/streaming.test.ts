/**
 * Exec and PortForward through the adapter's streaming server: with the
 * project's SPDY client (itself checked against containerd's CRI plugin in
 * spdy-client.test.ts), and with the real kubectl where it is installed,
 * going through a stand-in API server that passes the upgraded connection
 * on as the kubelet does.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { CreateContainerRequest, PodSandboxConfig, RunPodSandboxRequest } from '../../src/gen/runtime/v1/api';
import { loadHarnessEnv } from '../harness/env';
import { criError } from '../support/cri-client';
import { FakeApiServer } from '../support/fake-apiserver';
import { KUBECTL, kubectlAttachLine, startStreamingPod, StreamingPod, throughKubectlPortForward } from '../support/streaming-pod';
import { portForward, remoteCommand } from '../support/spdy-client';

const run = promisify(execFile);
const h = loadHarnessEnv();
const NS = 'cri-adapter-it-streaming';

let pod: StreamingPod;

/** The adapter's port-forward helpers (netns-dial.js processes among its descendants). */
function namespaceHelpers(adapterPid: number): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('netns-dial') && isChildOf(Number(p), adapterPid)) out.push(Number(p));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

/** True when `pid` descends from `ancestor` (the helper runs under nsenter, itself the adapter's child). */
function isChildOf(pid: number, ancestor: number): boolean {
  for (let p = pid, i = 0; p > 1 && i < 10; i++) {
    const ppid = Number(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    if (ppid === ancestor) return true;
    p = ppid;
  }
  return false;
}
beforeAll(async () => {
  pod = await startStreamingPod(h, { namespace: NS, name: 'streaming' });
});

afterAll(() => pod.close());

describe('Exec', () => {
  it('streams stdout and stderr apart and reports the exit code (v4 status)', async () => {
    const r = await remoteCommand(await pod.execUrl(['sh', '-c', 'echo out; echo err >&2; exit 3']), { stdout: true, stderr: true });
    expect(r.protocol).toBe('v4.channel.k8s.io');
    expect(r.stdout.toString()).toBe('out\n');
    expect(r.stderr.toString()).toBe('err\n');
    expect(r.exitCode).toBe(3);
    expect(r.status?.reason).toBe('NonZeroExitCode');
    const ok = await remoteCommand(await pod.execUrl(['true']), { stdout: true, stderr: true });
    expect(ok.status).toEqual({ metadata: {}, status: 'Success' });
    expect(ok.exitCode).toBe(0);
  });

  it('passes 1 MiB of stdin through and back, then ends stdin', async () => {
    const input = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7 + (i >> 10)) & 0xff;
    const r = await remoteCommand(await pod.execUrl(['cat'], { stdin: true }), { stdin: input, stdout: true, stderr: true, timeoutMs: 30_000 });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.equals(input)).toBe(true);
  });

  it('runs on a terminal when asked', async () => {
    const r = await remoteCommand(await pod.execUrl(['sh', '-c', 'tty; stty size'], { tty: true }), { stdout: true, tty: true });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toMatch(/\/dev\/pts\/\d+/);
  });

  it('speaks the older protocols too', async () => {
    const v1 = await remoteCommand(await pod.execUrl(['sh', '-c', 'echo old; exit 2']), { stdout: true, stderr: true, protocols: ['channel.k8s.io'] });
    expect(v1.protocol).toBe('channel.k8s.io');
    expect(v1.stdout.toString()).toBe('old\n');
    expect(v1.error).toMatch(/exit code 2/);
  });

  it('answers a missing command with 127 and the runtime message', async () => {
    const r = await remoteCommand(await pod.execUrl(['no-such-command']), { stdout: true, stderr: true });
    expect(r.exitCode).toBe(127);
    expect(r.status?.message).toMatch(/no-such-command/);
  });

  it('refuses bad requests, unknown containers and reused URLs', async () => {
    const code = async (p: Promise<unknown>) => (await criError(p)).code;
    expect(await code(pod.adapter.client.runtime.exec({ containerId: pod.sleeper, cmd: [], stdin: false, stdout: true, stderr: false, tty: false }))).toBe(3);
    expect(await code(pod.adapter.client.runtime.exec({ containerId: pod.sleeper, cmd: ['true'], stdin: false, stdout: false, stderr: false, tty: false }))).toBe(3);
    expect(await code(pod.adapter.client.runtime.exec({ containerId: pod.sleeper, cmd: ['true'], stdin: false, stdout: true, stderr: true, tty: true }))).toBe(3);
    expect(await code(pod.adapter.client.runtime.exec({ containerId: 'nope', cmd: ['true'], stdin: false, stdout: true, stderr: false, tty: false }))).toBe(5);
    const url = await pod.execUrl(['true']);
    await remoteCommand(url, { stdout: true, stderr: true });
    await expect(remoteCommand(url, { stdout: true, stderr: true })).rejects.toThrow(/404/);
  });

  it('kills the process and cleans up when the client goes away', async () => {
    const url = await pod.execUrl(['sh', '-c', 'echo started; sleep 600']);
    await expect(remoteCommand(url, { stdout: true, stderr: true, timeoutMs: 1500 })).rejects.toThrow();
    for (let i = 0; i < 50 && pod.execFifos() > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(pod.execFifos()).toBe(0);
    const ps = await remoteCommand(await pod.execUrl(['ps', '-o', 'args']), { stdout: true, stderr: true });
    expect(ps.stdout.toString()).not.toContain('sleep 600');
  });
});

describe('Attach', () => {
  it("joins a container's stdio: stdin in, stdout and stderr out, and the log still gets it all", async () => {
    const id = await pod.startContainer('echoer', ['sh', '-c', 'read line; echo got:$line; echo bye >&2'], { stdin: true, stdinOnce: true });
    const { url } = await pod.adapter.client.runtime.attach({ containerId: id, stdin: true, stdout: true, stderr: true, tty: false });
    const r = await remoteCommand(url, { stdin: Buffer.from('hello\n'), stdout: true, stderr: true, timeoutMs: 15_000 });
    expect(r.stdout.toString()).toBe('got:hello\n');
    expect(r.stderr.toString()).toBe('bye\n');
    expect(r.exitCode).toBe(0);
    const log = readFileSync(path.join(pod.dir, 'logs', 'echoer.log'), 'utf8');
    expect(log).toMatch(/ stdout F got:hello\n/);
    expect(log).toMatch(/ stderr F bye\n/);
  });

  it('drives a shell on a terminal', async () => {
    const id = await pod.startContainer('shell', ['sh'], { stdin: true, tty: true });
    const { url } = await pod.adapter.client.runtime.attach({ containerId: id, stdin: true, stdout: true, stderr: false, tty: true });
    const r = await remoteCommand(url, { stdin: Buffer.from('echo hi-$((6*7))\nexit\n'), stdout: true, tty: true, timeoutMs: 15_000 });
    expect(r.stdout.toString()).toContain('hi-42');
  });

  it('refuses a tty setting that does not match the container, and a stopped container', async () => {
    const code = async (p: Promise<unknown>) => (await criError(p)).code;
    expect(await code(pod.adapter.client.runtime.attach({ containerId: pod.sleeper, stdin: false, stdout: true, stderr: false, tty: true }))).toBe(3);
    const done = await pod.startContainer('done', ['true']);
    for (let i = 0; i < 50; i++) {
      if ((await pod.adapter.client.runtime.containerStatus({ containerId: done, verbose: false })).status?.state === 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await code(pod.adapter.client.runtime.attach({ containerId: done, stdin: false, stdout: true, stderr: true, tty: false }))).toBe(9);
  });
});

describe('PortForward', () => {
  it('carries a TCP connection to a port inside the pod', async () => {
    const { url } = await pod.adapter.client.runtime.portForward({ podSandboxId: pod.podId, port: [8080] });
    const r = await portForward(url, 8080, Buffer.from('GET /index.html HTTP/1.0\r\n\r\n'), { timeoutMs: 10_000 });
    expect(r.error).toBe('');
    expect(r.data.toString()).toMatch(/^HTTP\/1\.[01] 200/);
    expect(r.data.toString()).toContain('hello-from-the-pod');
  });

  it('serves many connections, and its namespace helper ends with the pod', async () => {
    const helpers = () => namespaceHelpers(pod.adapter.process.pid!);
    const before = helpers().length;
    const config = PodSandboxConfig.fromPartial({ metadata: { name: 'pf', namespace: 'it', uid: 'streaming-pf' }, linux: {} });
    const { podSandboxId } = await pod.adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config }));
    const { containerId } = await pod.adapter.client.runtime.createContainer(
      CreateContainerRequest.fromPartial({
        podSandboxId,
        sandboxConfig: config,
        config: { metadata: { name: 'web' }, image: { image: h.images.busybox }, command: ['sh', '-c', 'mkdir -p /w && echo pf-ok > /w/i && exec httpd -f -p 8081 -h /w'], linux: {} },
      }),
    );
    await pod.adapter.client.runtime.startContainer({ containerId });
    for (let i = 0; i < 10; i++) {
      const { url } = await pod.adapter.client.runtime.portForward({ podSandboxId, port: [8081] });
      const r = await portForward(url, 8081, Buffer.from('GET /i HTTP/1.0\r\n\r\n'), { timeoutMs: 10_000 });
      expect(r.data.toString()).toContain('pf-ok');
    }
    expect(helpers().length).toBe(before + 1);
    await pod.adapter.client.runtime.stopPodSandbox({ podSandboxId });
    for (let i = 0; i < 20 && helpers().length > before; i++) await new Promise((r) => setTimeout(r, 100));
    expect(helpers().length).toBe(before);
    await pod.adapter.client.runtime.removePodSandbox({ podSandboxId });
  });

  it('reports a closed port on the error stream', async () => {
    const { url } = await pod.adapter.client.runtime.portForward({ podSandboxId: pod.podId, port: [9] });
    const r = await portForward(url, 9, Buffer.from('x'), { timeoutMs: 10_000 });
    expect(r.error).toMatch(/connect/i);
  });

  it('refuses an unknown pod and a bad port', async () => {
    const code = async (p: Promise<unknown>) => (await criError(p)).code;
    expect(await code(pod.adapter.client.runtime.portForward({ podSandboxId: 'nope', port: [80] }))).toBe(5);
    expect(await code(pod.adapter.client.runtime.portForward({ podSandboxId: pod.podId, port: [70000] }))).toBe(3);
  });
});

(KUBECTL ? describe : describe.skip)('kubectl against the adapter (through a stand-in API server)', () => {
  let api: FakeApiServer;
  let server: string;
  const kubectlEnv = { ...process.env, KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false', KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false', HOME: '/tmp' };
  const kubectl = (args: string[]) =>
    run(KUBECTL!, ['--server', server, '--cache-dir', path.join(pod.dir, 'kcache'), ...args], { env: kubectlEnv, timeout: 30_000 });

  beforeAll(async () => {
    api = new FakeApiServer(pod.adapter.client);
    api.addPod({ namespace: 'it', name: 'streaming', podSandboxId: pod.podId, containers: { sleeper: pod.sleeper, web: pod.web } });
    server = await api.start();
  });
  afterAll(() => api.stop());

  it('kubectl exec prints the output and exits with the command\'s code', async () => {
    const ok = await kubectl(['exec', '-v=8', '-n', 'it', 'streaming', '-c', 'sleeper', '--', 'sh', '-c', 'echo via-kubectl; echo oops >&2']).catch((e: { stderr?: string }) => {
      process.stdout.write(String(e.stderr).slice(-4000));
      throw e;
    });
    expect(ok.stdout).toBe('via-kubectl\n');
    expect(ok.stderr).toContain('oops');
    const failed = (await kubectl(['exec', '-n', 'it', 'streaming', '-c', 'sleeper', '--', 'sh', '-c', 'exit 7']).catch((e: unknown) => e)) as {
      code: number;
    };
    expect(failed.code).toBe(7);
    expect(api.criCalls).toContain('Exec ["sh","-c","exit 7"]');
  });

  it('kubectl attach -i sends stdin to the container and prints its output', async () => {
    const id = await pod.startContainer('kattach', ['sh', '-c', 'read line; echo kubectl-said:$line'], { stdin: true, stdinOnce: true });
    api.addPod({ namespace: 'it', name: 'attachpod', podSandboxId: pod.podId, containers: { kattach: id }, stdinContainers: ['kattach'] });
    const { out, code } = await kubectlAttachLine(['--server', server, '--cache-dir', path.join(pod.dir, 'kcache'), 'attach', '-i', '-n', 'it', 'attachpod', '-c', 'kattach'], kubectlEnv, 'from-kubectl\n');
    expect(out).toContain('kubectl-said:from-kubectl');
    expect(code).toBe(0);
    expect(api.criCalls).toContain('Attach kattach');
  });

  it('kubectl port-forward serves the pod\'s port on a local one', async () => {
    const args = (local: number) => ['--server', server, '--cache-dir', path.join(pod.dir, 'kcache'), 'port-forward', '-n', 'it', 'pod/streaming', `${local}:8080`];
    await throughKubectlPortForward(args, kubectlEnv, async (_local, body) => {
      expect(body).toContain('hello-from-the-pod');
    });
  });
});

describe('daemon stop', () => {
  it('kills the execs of clients still connected, and the restarted daemon serves exec again', async () => {
    const url = await pod.execUrl(['sh', '-c', 'echo up; exec sleep 777']);
    const pending = remoteCommand(url, { stdout: true, stderr: true, timeoutMs: 20_000 }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 500));
    await pod.adapter.stop();
    await pending;
    await pod.restartAdapter();
    const ps = await remoteCommand(await pod.execUrl(['ps', '-o', 'args']), { stdout: true, stderr: true });
    expect(ps.stdout.toString()).toContain('sleep 3600');
    expect(ps.stdout.toString()).not.toContain('sleep 777');
  });
});
