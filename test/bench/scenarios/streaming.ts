import { rmSync } from 'node:fs';
import { PORTFORWARD_PROTOCOL, remoteCommand, SpdyClientConnection } from '../../support/spdy-client';
import { spdyTunnel, wsPortForward, wsRemoteCommand } from '../../support/ws-client';
import { compare } from '../measure';
import { Runtime, setUp, startContainer } from '../runtimes';
import type { BenchContext, BenchRow, Scenario } from '../types';

/**
 * What `kubectl exec` and `kubectl port-forward` cost beyond the network,
 * through the adapter's streaming server and through containerd's CRI
 * plugin's, on the same containerd in the same run:
 * - Exec: the CRI Exec call, the SPDY upgrade, `true` run in the container,
 *   and the exit status back;
 * - PortForward: the CRI PortForward call, the upgrade, one HTTP request to
 *   busybox httpd in the pod, until the whole response has arrived (not
 *   until the runtime closes the stream: containerd's plugin waits a second
 *   before it does).
 * And the adapter's WebSocket transports against its SPDY one, alternating
 * in rounds: exec over v5.channel.k8s.io, port-forward through client-go's
 * SPDY tunnel and over v4.channel.k8s.io channels.
 */

const BODY = 'port-forward-bench';

async function execTrue(rt: Runtime, containerId: string): Promise<void> {
  const { url } = await rt.client.runtime.exec({ containerId, cmd: ['true'], stdin: false, stdout: true, stderr: true, tty: false });
  const r = await remoteCommand(url, { stdout: true, stderr: true, timeoutMs: 10_000 });
  if (r.exitCode !== 0) throw new Error(`exec through ${rt.name} ended with ${r.exitCode}: ${r.error}`);
}

async function execTrueWebSocket(rt: Runtime, containerId: string): Promise<void> {
  const { url } = await rt.client.runtime.exec({ containerId, cmd: ['true'], stdin: false, stdout: true, stderr: true, tty: false });
  const r = await wsRemoteCommand(url, { protocols: ['v5.channel.k8s.io'], timeoutMs: 10_000 });
  if (r.exitCode !== 0) throw new Error(`exec over WebSocket through ${rt.name} ended with ${r.exitCode}: ${r.error}`);
}

async function httpGet(rt: Runtime, tunnel = false): Promise<void> {
  const { url } = await rt.client.runtime.portForward({ podSandboxId: rt.pod, port: [8080] });
  const conn = tunnel ? await spdyTunnel(url) : await SpdyClientConnection.connect(url, { protocols: [PORTFORWARD_PROTOCOL], timeoutMs: 10_000 });
  try {
    const headers = { port: '8080', requestid: '0' };
    const error = conn.openStream({ streamtype: 'error', ...headers });
    const data = conn.openStream({ streamtype: 'data', ...headers });
    void error.end().catch(() => undefined);
    await data.write(Buffer.from('GET /index.html HTTP/1.0\r\n\r\n'));
    await conn.waitFor('the response', () => data.data().includes(BODY) || error.data().length > 0, Date.now() + 10_000);
    if (!data.data().includes(BODY)) throw new Error(`port-forward through ${rt.name} failed: ${error.data().toString()}`);
  } finally {
    conn.destroy();
  }
}

/** One HTTP GET over a v4.channel.k8s.io port-forward (the server closes once httpd has answered and closed). */
async function httpGetChannels(rt: Runtime): Promise<void> {
  const { url } = await rt.client.runtime.portForward({ podSandboxId: rt.pod, port: [8080] });
  const r = await wsPortForward(url, [Buffer.from('GET /index.html HTTP/1.0\r\n\r\n')], { timeoutMs: 10_000 });
  if (!r.ports[0]?.data.includes(BODY)) throw new Error(`v4 port-forward through ${rt.name} failed: ${r.ports[0]?.error ?? 'no data channel'}`);
}

export const streaming: Scenario = {
  name: 'streaming',
  async run({ harness, adapter, criPlugin }: BenchContext): Promise<BenchRow[]> {
    const image = harness.images.busybox;
    const ours = await setUp('adapter', adapter.client, image, adapter.process.pid!);
    const theirs = await setUp('plugin', criPlugin, image, 0);
    try {
      const web = ['sh', '-c', `mkdir -p /www && echo ${BODY} > /www/index.html && exec httpd -f -p 8080 -h /www`];
      const [a, b] = await Promise.all([startContainer(ours, image, web), startContainer(theirs, image, web)]);
      const exec = await compare(
        () => execTrue(ours, a.id),
        () => execTrue(theirs, b.id),
        { rounds: 5, perRound: 6, warmup: 3 },
      );
      const forward = await compare(
        () => httpGet(ours),
        () => httpGet(theirs),
        { rounds: 5, perRound: 6, warmup: 3 },
      );
      const wsExec = await compare(
        () => execTrueWebSocket(ours, a.id),
        () => execTrue(ours, a.id),
        { rounds: 5, perRound: 6, warmup: 3 },
      );
      const wsTunnel = await compare(
        () => httpGet(ours, true),
        () => httpGet(ours),
        { rounds: 5, perRound: 6, warmup: 3 },
      );
      const wsChannels = await compare(
        () => httpGetChannels(ours),
        () => httpGet(ours),
        { rounds: 5, perRound: 6, warmup: 3 },
      );
      const reference = "containerd's CRI plugin";
      const spdy = 'cri-adapter over SPDY';
      return [
        { scenario: 'Exec (true) over WebSocket v5, URL to exit status', subject: 'cri-adapter', reference: spdy, subjectSample: wsExec.subject, referenceSample: wsExec.reference },
        { scenario: 'PortForward HTTP GET, SPDY tunnelled in WebSocket', subject: 'cri-adapter', reference: spdy, subjectSample: wsTunnel.subject, referenceSample: wsTunnel.reference },
        { scenario: 'PortForward HTTP GET, WebSocket v4 channels (to close)', subject: 'cri-adapter', reference: spdy, subjectSample: wsChannels.subject, referenceSample: wsChannels.reference },
        { scenario: 'Exec (true) over SPDY, URL to exit status', subject: 'cri-adapter', reference, subjectSample: exec.subject, referenceSample: exec.reference },
        { scenario: 'PortForward HTTP GET, URL to full response', subject: 'cri-adapter', reference, subjectSample: forward.subject, referenceSample: forward.reference },
      ];
    } finally {
      await ours.client.runtime.removePodSandbox({ podSandboxId: ours.pod }).catch(() => undefined);
      await theirs.client.runtime.stopPodSandbox({ podSandboxId: theirs.pod }).catch(() => undefined);
      await theirs.client.runtime.removePodSandbox({ podSandboxId: theirs.pod }).catch(() => undefined);
      for (const rt of [ours, theirs]) rmSync(rt.logDir, { recursive: true, force: true });
    }
  },
};
