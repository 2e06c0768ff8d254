/**
 * Proves the test SPDY/3.1 client (test/support/spdy-client.ts) against a
 * reference server: the streaming server of containerd's own CRI plugin
 * (Go: the kubelet's streaming package on moby/spdystream), which the
 * harness runs next to the adapter. If these pass, the client speaks the
 * protocol the way kubectl does, and can in turn judge our own server.
 */
import { randomBytes } from 'node:crypto';
import { CreateContainerRequest, PodSandboxConfig, PullImageRequest, RunPodSandboxRequest } from '../../src/gen/runtime/v1/api';
import { loadHarnessEnv } from '../harness/env';
import { criClient, CriClient } from '../support/cri-client';
import { SPDY3_DICTIONARY } from '../../src/streaming/spdy/dictionary';
import { FrameRecord, portForward, remoteCommand, REMOTECOMMAND_PROTOCOLS } from '../support/spdy-client';

const h = loadHarnessEnv();
const ECHO_PORT = 8080;
const CLOSED_PORT = 8081;

let client: CriClient;
let podId: string;
let podConfig: PodSandboxConfig;
let shellId: string;
let seq = 0;

async function startContainer(command: string[]): Promise<string> {
  const { containerId } = await client.runtime.createContainer(
    CreateContainerRequest.fromPartial({
      podSandboxId: podId,
      sandboxConfig: podConfig,
      config: { metadata: { name: `c${seq++}` }, image: { image: h.images.busybox }, command, linux: {} },
    }),
  );
  await client.runtime.startContainer({ containerId });
  return containerId;
}

async function execUrl(cmd: string[], flags: { stdin?: boolean; stdout?: boolean; stderr?: boolean; tty?: boolean }): Promise<string> {
  const { url } = await client.runtime.exec({
    containerId: shellId,
    cmd,
    stdin: flags.stdin ?? false,
    stdout: flags.stdout ?? false,
    stderr: flags.stderr ?? false,
    tty: flags.tty ?? false,
  });
  return url;
}

beforeAll(async () => {
  expect(h.containerd.criPlugin).toBe(true);
  client = criClient(h.containerd.address);
  const n = `spdy-client-${process.pid}-${Date.now()}`;
  podConfig = PodSandboxConfig.fromPartial({ metadata: { name: n, namespace: 'cri-adapter-it-spdy', uid: n }, linux: {} });
  await client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
  ({ podSandboxId: podId } = await client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: podConfig })));
  shellId = await startContainer(['sleep', '3600']);
  // busybox nc: -ll keeps listening, -e runs cat per connection, so it echoes.
  await startContainer(['nc', '-ll', '-p', String(ECHO_PORT), '-e', 'cat']);
});

afterAll(async () => {
  if (podId) {
    await client.runtime.stopPodSandbox({ podSandboxId: podId }).catch(() => undefined);
    await client.runtime.removePodSandbox({ podSandboxId: podId }).catch(() => undefined);
  }
  client?.close();
});

test('the shared SPDY/3 dictionary has the protocol\'s shape (containerd checks its Adler-32 on every connection below)', () => {
  expect(SPDY3_DICTIONARY.length).toBe(1423);
  expect(SPDY3_DICTIONARY.subarray(0, 11).toString('latin1')).toBe('\0\0\0\x07options');
  expect(SPDY3_DICTIONARY.subarray(-7).toString('latin1')).toBe(',enq=0.');
});

describe('exec through containerd CRI plugin streaming server', () => {
  test('stdout, stderr and exit code 3 over v4 (status JSON on the error stream)', async () => {
    const url = await execUrl(['sh', '-c', 'echo out; echo err >&2; exit 3'], { stdout: true, stderr: true });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/exec\//);
    const frames: FrameRecord[] = [];
    const r = await remoteCommand(url, { stdout: true, stderr: true, trace: (f) => frames.push(f) });
    console.log(
      `negotiated ${r.protocol}; error stream: ${r.error}\nframes:\n` +
        frames.map((f) => `  ${f.dir} ${f.type} #${f.streamId} flags=${f.flags} len=${f.length}${f.info ? ` ${f.info}` : ''}`).join('\n'),
    );
    expect(r.protocol).toBe('v4.channel.k8s.io');
    expect(r.stdout.toString()).toBe('out\n');
    expect(r.stderr.toString()).toBe('err\n');
    expect(r.exitCode).toBe(3);
    expect(r.status?.status).toBe('Failure');
    expect(r.status?.reason).toBe('NonZeroExitCode');
    expect(r.status?.details?.causes).toEqual([expect.objectContaining({ reason: 'ExitCode', message: '3' })]);
  });

  test('success over v4 is {"status":"Success"}, exit code 0', async () => {
    const url = await execUrl(['sh', '-c', 'echo fine'], { stdout: true, stderr: true });
    const r = await remoteCommand(url, { stdout: true, stderr: true });
    console.log(`success error stream: ${r.error}`);
    expect(r.stdout.toString()).toBe('fine\n');
    expect(r.stderr.length).toBe(0);
    expect(r.status).toEqual(expect.objectContaining({ status: 'Success' }));
    expect(r.exitCode).toBe(0);
  });

  test('200 KiB through stdin and back out of cat (well past one 64 KiB window)', async () => {
    const input = Buffer.concat([randomBytes(100 * 1024), Buffer.from('x'.repeat(100 * 1024))]);
    const url = await execUrl(['cat'], { stdin: true, stdout: true, stderr: true });
    const r = await remoteCommand(url, { stdin: input, stdout: true, stderr: true });
    expect(r.protocol).toBe('v4.channel.k8s.io');
    expect(r.stdout.length).toBe(input.length);
    expect(r.stdout.equals(input)).toBe(true);
    expect(r.stderr.length).toBe(0);
    expect(r.exitCode).toBe(0);
  });

  test('tty: stdout only (no stderr stream), resize stream opened', async () => {
    const url = await execUrl(['sh', '-c', 'echo hi; sleep 0.5; stty size'], { stdout: true, tty: true });
    const frames: FrameRecord[] = [];
    const r = await remoteCommand(url, { stdout: true, tty: true, terminalSize: { width: 101, height: 33 }, trace: (f) => frames.push(f) });
    const opened = frames.filter((f) => f.dir === 'out' && f.type === 'SYN_STREAM').map((f) => f.info);
    console.log(`tty output ${JSON.stringify(r.stdout.toString())}; streams opened: ${opened.join(' ')}`);
    expect(opened).toEqual(['{streamtype=error}', '{streamtype=stdout}', '{streamtype=resize}']);
    expect(r.stdout.toString()).toContain('hi');
    // A terminal turns \n into \r\n; the size sent on the resize stream reaches the pty.
    expect(r.stdout.toString()).toContain('hi\r\n');
    expect(r.stdout.toString()).toContain('33 101');
    expect(r.exitCode).toBe(0);
  });

  test.each([...REMOTECOMMAND_PROTOCOLS])('offering only %s', async (proto) => {
    const url = await execUrl(['sh', '-c', 'echo out; echo err >&2; exit 3'], { stdout: true, stderr: true });
    const r = await remoteCommand(url, { stdout: true, stderr: true, protocols: [proto] });
    console.log(`offered only ${proto}: negotiated ${JSON.stringify(r.protocol)}, error stream ${JSON.stringify(r.error)}, exitCode ${r.exitCode}`);
    expect(r.protocol).toBe(proto);
    expect(r.stdout.toString()).toBe('out\n');
    expect(r.stderr.toString()).toBe('err\n');
    if (proto === 'v4.channel.k8s.io') {
      expect(r.exitCode).toBe(3);
    } else if (proto === 'channel.k8s.io') {
      // v1 resets the error stream as soon as the streams are set up, so the
      // failure cannot be reported at all.
      expect(r.error).toBe('');
      expect(r.exitCode).toBe(0);
    } else {
      // v2/v3: plain text, no exit code.
      expect(r.error).toMatch(/exit code 3/);
      expect(r.status).toBeUndefined();
      expect(r.exitCode).toBe(-1);
    }
  });

  test('v1 with stdin', async () => {
    const url = await execUrl(['cat'], { stdin: true, stdout: true });
    const r = await remoteCommand(url, { stdin: Buffer.from('via v1\n'), stdout: true, protocols: ['channel.k8s.io'] });
    expect(r.protocol).toBe('channel.k8s.io');
    expect(r.stdout.toString()).toBe('via v1\n');
  });

  test('no common protocol: rejected with the server answer', async () => {
    const url = await execUrl(['true'], { stdout: true });
    const err = await remoteCommand(url, { stdout: true, protocols: ['v9.channel.k8s.io'] }).then(
      () => undefined,
      (e: Error) => e,
    );
    console.log(`no common protocol: ${err?.message}`);
    expect(err?.message).toMatch(/instead of 101 Switching Protocols/);
  });

  test('a used token: rejected with the status line', async () => {
    const url = await execUrl(['true'], { stdout: true });
    await remoteCommand(url, { stdout: true });
    await expect(remoteCommand(url, { stdout: true })).rejects.toThrow(/"HTTP\/1\.1 404 Not Found" instead of 101/);
  });

  test('a server that never answers: timeout error', async () => {
    const url = await execUrl(['sleep', '5'], { stdout: true });
    const err = await remoteCommand(url, { stdout: true, timeoutMs: 1_000 }).then(
      () => undefined,
      (e: Error) => e,
    );
    console.log(`timeout: ${err?.message}`);
    expect(err?.message).toMatch(/timed out waiting for the server to end/);
  });
});

describe('port-forward through containerd CRI plugin streaming server', () => {
  async function forwardUrl(): Promise<string> {
    const { url } = await client.runtime.portForward({ podSandboxId: podId, port: [ECHO_PORT] });
    return url;
  }

  test('echo round trip', async () => {
    const payload = Buffer.from('hello through the pod\n');
    // nc may still be starting: retry until the port answers.
    let r: { data: Buffer; error: string } | undefined;
    const frames: FrameRecord[] = [];
    for (let i = 0; i < 50; i++) {
      frames.length = 0;
      r = await portForward(await forwardUrl(), ECHO_PORT, payload, { trace: (f) => frames.push(f) });
      if (r.error === '' && r.data.length > 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    console.log(
      `port-forward frames:\n` + frames.map((f) => `  ${f.dir} ${f.type} #${f.streamId} flags=${f.flags} len=${f.length}${f.info ? ` ${f.info}` : ''}`).join('\n'),
    );
    expect(r!.error).toBe('');
    expect(r!.data.toString()).toBe(payload.toString());
  });

  test('300 KiB echoed back intact', async () => {
    const payload = randomBytes(300 * 1024);
    const r = await portForward(await forwardUrl(), ECHO_PORT, payload, { requestId: '7' });
    expect(r.error).toBe('');
    expect(r.data.length).toBe(payload.length);
    expect(r.data.equals(payload)).toBe(true);
  });

  test('a stream the server refuses (port 0): rejected, RST_STREAM before SYN_REPLY', async () => {
    const err = await portForward(await forwardUrl(), 0, Buffer.from('x')).then(
      () => undefined,
      (e: Error) => e,
    );
    console.log(`refused stream: ${err?.message}`);
    expect(err?.message).toMatch(/server refused stream \d+ \{streamtype=(error|data) port=0 requestid=0\} \(RST_STREAM CANCEL before any SYN_REPLY\)/);
  });

  test('closed port: error text on the error stream', async () => {
    const r = await portForward(await forwardUrl(), CLOSED_PORT, Buffer.from('nobody home'));
    console.log(`closed port error stream: ${r.error}`);
    expect(r.data.length).toBe(0);
    expect(r.error).toMatch(new RegExp(`${CLOSED_PORT}`));
  });
});
