/**
 * Exec, Attach and PortForward over WebSocket through the adapter's
 * streaming server: every subprotocol with the project's own WebSocket
 * client (test/support/ws-client.ts, on `ws`), and kubectl 1.32's WebSocket
 * clients (v5.channel.k8s.io for exec/attach, the SPDY tunnel for
 * port-forward) through a stand-in API server that passes the upgrade on
 * to the runtime's URL.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadHarnessEnv } from '../harness/env';
import { FakeApiServer } from '../support/fake-apiserver';
import { KUBECTL, kubectlAttachLine, startStreamingPod, StreamingPod, throughKubectlPortForward } from '../support/streaming-pod';
import { portForwardOn, remoteCommand } from '../support/spdy-client';
import { openWebSocket, spdyTunnel, wsPortForward, wsRemoteCommand, WS_STDIN } from '../support/ws-client';

const run = promisify(execFile);
const h = loadHarnessEnv();
const NS = 'cri-adapter-it-websocket';
const GET = Buffer.from('GET /index.html HTTP/1.0\r\n\r\n');

let pod: StreamingPod;

async function pfUrl(ports: number[] = [8080]): Promise<string> {
  return (await pod.adapter.client.runtime.portForward({ podSandboxId: pod.podId, port: ports })).url;
}

beforeAll(async () => {
  pod = await startStreamingPod(h, { namespace: NS, name: 'websocket' });
});

afterAll(() => pod.close());

describe('URLs', () => {
  it('Exec, Attach and PortForward hand out absolute http:// URLs (a scheme-less one is dialled as HTTPS by a kubelet 1.36+)', async () => {
    const attach = await pod.startContainer('urlcheck', ['sh', '-c', 'read x'], { stdin: true });
    const urls = [
      await pod.execUrl(['true']),
      (await pod.adapter.client.runtime.attach({ containerId: attach, stdin: true, stdout: true, stderr: true, tty: false })).url,
      await pfUrl(),
    ];
    for (const url of urls) {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/(exec|attach|portforward)\/[A-Za-z0-9_-]+$/);
    }
  });
});

describe('Exec over WebSocket', () => {
  it('v5.channel.k8s.io: stdout and stderr apart, the exit code in the status on channel 3, a normal close', async () => {
    const r = await wsRemoteCommand(await pod.execUrl(['sh', '-c', 'echo out; echo err >&2; exit 3']), { protocols: ['v5.channel.k8s.io'] });
    expect(r.protocol).toBe('v5.channel.k8s.io');
    expect(r.stdout.toString()).toBe('out\n');
    expect(r.stderr.toString()).toBe('err\n');
    expect(r.exitCode).toBe(3);
    expect(r.status?.reason).toBe('NonZeroExitCode');
    expect(r.closeCode).toBe(1000);
    // As the kubelet does: an empty message on stdout first says the server is ready.
    expect(r.channels[0]).toBe(-1);
    const ok = await wsRemoteCommand(await pod.execUrl(['true']), { protocols: ['v5.channel.k8s.io'] });
    expect(ok.status).toEqual({ metadata: {}, status: 'Success' });
    expect(ok.exitCode).toBe(0);
  });

  it('v5.channel.k8s.io: 1 MiB of stdin through cat and back, stdin closed by [255, 0]', async () => {
    const input = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = (i * 13 + (i >> 9)) & 0xff;
    const r = await wsRemoteCommand(await pod.execUrl(['cat'], { stdin: true }), { protocols: ['v5.channel.k8s.io'], stdin: input, timeoutMs: 30_000 });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.equals(input)).toBe(true);
  });

  it('v4.channel.k8s.io (no half-close): stdin, output and a non-zero exit code', async () => {
    const r = await wsRemoteCommand(await pod.execUrl(['sh', '-c', 'head -c 6; exit 4'], { stdin: true }), { protocols: ['v4.channel.k8s.io'], stdin: Buffer.from('abcdef') });
    expect(r.protocol).toBe('v4.channel.k8s.io');
    expect(r.stdout.toString()).toBe('abcdef');
    expect(r.exitCode).toBe(4);
  });

  it('v4.base64.channel.k8s.io: text messages with base64 payloads both ways', async () => {
    const r = await wsRemoteCommand(await pod.execUrl(['sh', '-c', 'head -c 3; printf "\\001\\377" >&2; exit 5'], { stdin: true }), {
      protocols: ['v4.base64.channel.k8s.io'],
      stdin: Buffer.from('xyz'),
    });
    expect(r.protocol).toBe('v4.base64.channel.k8s.io');
    expect(r.stdout.toString()).toBe('xyz');
    expect([...r.stderr]).toEqual([1, 255]);
    expect(r.exitCode).toBe(5);
  });

  it.each([['channel.k8s.io'], ['base64.channel.k8s.io'], ['']])('%s (pre-v4, or no protocol named): failures as text on channel 3', async (protocol) => {
    const r = await wsRemoteCommand(await pod.execUrl(['sh', '-c', 'echo old; exit 2']), { protocols: protocol ? [protocol] : [] });
    expect(r.protocol).toBe(protocol);
    expect(r.stdout.toString()).toBe('old\n');
    expect(r.error).toMatch(/exit code 2/);
    const ok = await wsRemoteCommand(await pod.execUrl(['true']), { protocols: protocol ? [protocol] : [] });
    expect(ok.error).toBe('');
    expect(ok.closeCode).toBe(1000);
  });

  it('takes the first of the offered protocols it speaks, in the client\'s order', async () => {
    const r = await wsRemoteCommand(await pod.execUrl(['true']), { protocols: ['v9.channel.k8s.io', 'v4.base64.channel.k8s.io', 'v5.channel.k8s.io'] });
    expect(r.protocol).toBe('v4.base64.channel.k8s.io');
  });

  it.each([['v4.channel.k8s.io'], ['v5.channel.k8s.io']])('%s: a terminal, resized from channel 4', async (protocol) => {
    // Polls: the resize reaches the terminal through containerd while the command runs.
    const script = 'tty; for i in $(seq 1 25); do s=$(stty size); [ "$s" = "45 123" ] && break; sleep 0.2; done; echo size=$s';
    const r = await wsRemoteCommand(await pod.execUrl(['sh', '-c', script], { tty: true }), { protocols: [protocol], terminalSizes: [{ width: 123, height: 45 }] });
    expect(r.stdout.toString()).toMatch(/\/dev\/pts\/\d+/);
    expect(r.stdout.toString()).toContain('size=45 123');
    expect(r.exitCode).toBe(0);
  });

  it('v5: an interactive shell on a terminal, stdin sent as the output arrives', async () => {
    let sent = false;
    const r = await wsRemoteCommand(await pod.execUrl(['sh'], { tty: true, stdin: true }), {
      protocols: ['v5.channel.k8s.io'],
      closeStdin: false,
      onMessage: (channel, data, send) => {
        if (!sent && channel === 1 && data.length === 0) {
          sent = true;
          send(WS_STDIN, Buffer.from('echo ws-$((6*7))\nexit 9\n'));
        }
      },
    });
    expect(r.stdout.toString()).toContain('ws-42');
    expect(r.exitCode).toBe(9);
  });

  it('answers a missing command with 127', async () => {
    const r = await wsRemoteCommand(await pod.execUrl(['no-such-command']), { protocols: ['v5.channel.k8s.io'] });
    expect(r.exitCode).toBe(127);
    expect(r.status?.message).toMatch(/no-such-command/);
  });

  it('refuses unknown subprotocols, reused and unknown URLs, and a plain GET', async () => {
    const url = await pod.execUrl(['true']);
    const refused = (await openWebSocket(url, ['v9.channel.k8s.io', 'x'.repeat(5000)]).catch((e: Error) => e)) as Error;
    expect(refused.message).toMatch(/403.*none of the offered subprotocols.*supported/);
    // The offer is echoed only in part.
    expect(refused.message.length).toBeLessThan(1000);
    // A refused offer leaves the URL usable.
    await wsRemoteCommand(url, { protocols: ['v5.channel.k8s.io'] });
    await expect(wsRemoteCommand(url, { protocols: ['v5.channel.k8s.io'] })).rejects.toThrow(/404/);
    await expect(openWebSocket(url.replace(/[^/]+$/, 'nope'), ['v5.channel.k8s.io'])).rejects.toThrow(/404/);
    const plain = await fetch(await pod.execUrl(['true']));
    expect(plain.status).toBe(400);
    expect(await plain.text()).toMatch(/websocket/);
  });

  it('kills the process and cleans up when the client goes away', async () => {
    const url = await pod.execUrl(['sh', '-c', 'echo started; exec sleep 601']);
    const { ws } = await openWebSocket(url, ['v5.channel.k8s.io']);
    await new Promise<void>((resolve) => ws.on('message', (m: Buffer) => m.toString().includes('started') && resolve()));
    ws.terminate();
    for (let i = 0; i < 50 && pod.execFifos() > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(pod.execFifos()).toBe(0);
    const ps = await wsRemoteCommand(await pod.execUrl(['ps', '-o', 'args']), { protocols: ['v5.channel.k8s.io'] });
    expect(ps.stdout.toString()).not.toContain('sleep 601');
  });
});

describe('Attach over WebSocket', () => {
  it('v5: stdin in (closed with [255, 0], stdin_once), stdout and stderr out', async () => {
    const id = await pod.startContainer('echoer', ['sh', '-c', 'read line; echo got:$line; echo bye >&2'], { stdin: true, stdinOnce: true });
    const { url } = await pod.adapter.client.runtime.attach({ containerId: id, stdin: true, stdout: true, stderr: true, tty: false });
    const r = await wsRemoteCommand(url, { protocols: ['v5.channel.k8s.io'], stdin: Buffer.from('hello\n'), timeoutMs: 15_000 });
    expect(r.stdout.toString()).toBe('got:hello\n');
    expect(r.stderr.toString()).toBe('bye\n');
    expect(r.exitCode).toBe(0);
  });

  it('v4.channel.k8s.io: a shell on a terminal', async () => {
    const id = await pod.startContainer('shell', ['sh'], { stdin: true, tty: true });
    const { url } = await pod.adapter.client.runtime.attach({ containerId: id, stdin: true, stdout: true, stderr: false, tty: true });
    const r = await wsRemoteCommand(url, { protocols: ['v4.channel.k8s.io'], stdin: Buffer.from('echo hi-$((6*7))\nexit\n'), timeoutMs: 15_000 });
    expect(r.stdout.toString()).toContain('hi-42');
  });
});

describe('PortForward over WebSocket', () => {
  it('v4.channel.k8s.io with ?port=: data on channel 0, each channel announcing its port (2 bytes LE), a close when the connection ends', async () => {
    const r = await wsPortForward(`${await pfUrl()}?port=8080`, [GET], { timeoutMs: 10_000 });
    expect(r.protocol).toBe('v4.channel.k8s.io');
    expect(r.ports).toHaveLength(1);
    expect(r.ports[0]!.dataPort).toBe(8080);
    expect(r.ports[0]!.errorPort).toBe(8080);
    expect(r.ports[0]!.data.toString()).toMatch(/^HTTP\/1\.[01] 200/);
    expect(r.ports[0]!.data.toString()).toContain('hello-from-the-pod');
    expect(r.ports[0]!.error).toBe('');
    expect(r.closeCode).toBe(1000);
  });

  it('v4.base64.channel.k8s.io, two ports from the CRI request (no ?port=): one served, one refused on its error channel', async () => {
    const r = await wsPortForward(await pfUrl([8080, 9]), [GET, Buffer.from('x')], { protocols: ['v4.base64.channel.k8s.io'], timeoutMs: 10_000 });
    expect(r.protocol).toBe('v4.base64.channel.k8s.io');
    expect(r.ports.map((p) => [p.dataPort, p.errorPort])).toEqual([
      [8080, 8080],
      [9, 9],
    ]);
    expect(r.ports[0]!.data.toString()).toContain('hello-from-the-pod');
    expect(r.ports[1]!.error).toMatch(/connect/i);
  });

  it('?port= takes comma-separated lists and refuses what is not a port', async () => {
    const r = await wsPortForward(`${await pfUrl([])}?port=8080,8080`, [GET, GET], { timeoutMs: 10_000 });
    expect(r.ports.map((p) => p.data.toString().includes('hello-from-the-pod'))).toEqual([true, true]);
    await expect(openWebSocket(`${await pfUrl()}?port=http`, ['v4.channel.k8s.io'])).rejects.toThrow(/400.*unable to parse "http" as a port/);
    await expect(openWebSocket(`${await pfUrl()}?port=0`, ['v4.channel.k8s.io'])).rejects.toThrow(/400/);
    await expect(openWebSocket(await pfUrl([]), ['v4.channel.k8s.io'])).rejects.toThrow(/400.*no port to forward/);
  });

  it('SPDY/3.1+portforward.k8s.io: a SPDY session inside the WebSocket carries connections as over plain SPDY', async () => {
    const conn = await spdyTunnel(await pfUrl([]));
    expect(conn.protocol).toBe('portforward.k8s.io');
    const first = await portForwardOn(conn, 8080, GET, { requestId: '0', timeoutMs: 10_000 }).catch((e: Error) => e);
    expect(first).not.toBeInstanceOf(Error);
    expect((first as { data: Buffer }).data.toString()).toContain('hello-from-the-pod');
    // portForwardOn closed the session (GOAWAY, then the WebSocket closes normally).
    const second = await spdyTunnel(await pfUrl([]));
    const refused = await portForwardOn(second, 9, Buffer.from('x'), { timeoutMs: 10_000 });
    expect(refused.error).toMatch(/connect/i);
  });

  it('the tunnel serves several connections on one session', async () => {
    const conn = await spdyTunnel(await pfUrl([]));
    try {
      for (const id of ['1', '2', '3']) {
        const error = conn.openStream({ streamtype: 'error', port: '8080', requestid: id });
        const data = conn.openStream({ streamtype: 'data', port: '8080', requestid: id });
        void error.end();
        await data.write(GET);
        await data.end();
        await conn.waitFor(`response ${id}`, () => data.remoteEnded, Date.now() + 10_000);
        expect(data.data().toString()).toContain('hello-from-the-pod');
      }
    } finally {
      await conn.close();
    }
  });
});

describe('SPDY still', () => {
  it('serves the same URLs over SPDY/3.1', async () => {
    const r = await remoteCommand(await pod.execUrl(['sh', '-c', 'echo spdy; exit 6']), { stdout: true, stderr: true });
    expect(r.stdout.toString()).toBe('spdy\n');
    expect(r.exitCode).toBe(6);
  });
});

(KUBECTL ? describe : describe.skip)('kubectl over WebSocket (through a stand-in API server that passes WebSockets on)', () => {
  let api: FakeApiServer;
  let server: string;
  const kubectlEnv = { ...process.env, KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'true', KUBECTL_PORT_FORWARD_WEBSOCKETS: 'true', HOME: '/tmp' };
  const args = () => ['--server', server, '--cache-dir', path.join(pod.dir, 'kcache')];

  beforeAll(async () => {
    api = new FakeApiServer(pod.adapter.client);
    api.addPod({ namespace: 'it', name: 'websocket', podSandboxId: pod.podId, containers: { sleeper: pod.sleeper } });
    server = await api.start();
  });
  afterAll(() => api.stop());

  it("kubectl exec (v5.channel.k8s.io) prints the output and exits with the command's code", async () => {
    const ok = await run(KUBECTL!, [...args(), 'exec', '-n', 'it', 'websocket', '-c', 'sleeper', '--', 'sh', '-c', 'echo via-ws; echo oops >&2'], {
      env: kubectlEnv,
      timeout: 30_000,
    });
    expect(ok.stdout).toBe('via-ws\n');
    expect(ok.stderr).toContain('oops');
    const failed = (await run(KUBECTL!, [...args(), 'exec', '-n', 'it', 'websocket', '-c', 'sleeper', '--', 'sh', '-c', 'exit 7'], {
      env: kubectlEnv,
      timeout: 30_000,
    }).catch((e: unknown) => e)) as { code: number };
    expect(failed.code).toBe(7);
    expect(api.upgrades.filter((u) => u.startsWith('websocket exec'))).toEqual([
      'websocket exec offered=v5.channel.k8s.io -> 101 v5.channel.k8s.io',
      'websocket exec offered=v5.channel.k8s.io -> 101 v5.channel.k8s.io',
    ]);
  });

  it('kubectl exec -i sends stdin and closes it (v5 half-close)', async () => {
    const child = execFile(KUBECTL!, [...args(), 'exec', '-i', '-n', 'it', 'websocket', '-c', 'sleeper', '--', 'sh', '-c', 'cat; echo end-of-stdin'], {
      env: kubectlEnv,
      timeout: 30_000,
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stdin!.end('piped-through\n');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(out).toBe('piped-through\nend-of-stdin\n');
    expect(code).toBe(0);
  });

  it('kubectl attach -i over WebSocket', async () => {
    const id = await pod.startContainer('kwsattach', ['sh', '-c', 'read line; echo kubectl-ws-said:$line'], { stdin: true, stdinOnce: true });
    api.addPod({ namespace: 'it', name: 'wsattach', podSandboxId: pod.podId, containers: { kwsattach: id }, stdinContainers: ['kwsattach'] });
    const { out, code } = await kubectlAttachLine([...args(), 'attach', '-i', '-n', 'it', 'wsattach', '-c', 'kwsattach'], kubectlEnv, 'from-kubectl\n');
    expect(out).toContain('kubectl-ws-said:from-kubectl');
    expect(code).toBe(0);
    expect(api.upgrades).toContain('websocket attach offered=v5.channel.k8s.io -> 101 v5.channel.k8s.io');
  });

  it('kubectl port-forward through the SPDY tunnel', async () => {
    await throughKubectlPortForward((local) => [...args(), 'port-forward', '-n', 'it', 'pod/websocket', `${local}:8080`], kubectlEnv, async (local, body) => {
      expect(body).toContain('hello-from-the-pod');
      // A second connection through the same tunnel.
      expect(await fetch(`http://127.0.0.1:${local}/index.html`).then((r) => r.text())).toContain('hello-from-the-pod');
      expect(api.upgrades).toContain('websocket portforward offered=SPDY/3.1+portforward.k8s.io -> 101 SPDY/3.1+portforward.k8s.io');
    });
  });
});

describe('daemon stop', () => {
  it('closes WebSocket sessions and kills their execs', async () => {
    const url = await pod.execUrl(['sh', '-c', 'echo up; exec sleep 778']);
    const pending = wsRemoteCommand(url, { protocols: ['v5.channel.k8s.io'], timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 500));
    await pod.adapter.stop();
    const r = await pending.catch((e: Error) => e);
    expect(r).not.toBeInstanceOf(Error);
    await pod.restartAdapter();
    const ps = await wsRemoteCommand(await pod.execUrl(['ps', '-o', 'args']), { protocols: ['v5.channel.k8s.io'] });
    expect(ps.stdout.toString()).toContain('sleep 3600');
    expect(ps.stdout.toString()).not.toContain('sleep 778');
  });
});
