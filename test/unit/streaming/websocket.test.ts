import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { statusText } from '../../../src/streaming/remote-command';
import { webSocketPorts } from '../../../src/streaming/server';
import { WebSocketByteStream } from '../../../src/streaming/websocket/byte-stream';
import { codecFor, WebSocketChannels } from '../../../src/streaming/websocket/channels';

/** A connected pair: the server end as `ws` hands it over, the client end. */
async function pair(): Promise<{ server: WebSocket; client: WebSocket; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const serverSide = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  await new Promise<void>((resolve) => client.once('open', () => resolve()));
  const server = await serverSide;
  return {
    server,
    client,
    close: async () => {
      client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data: Buffer, binary: boolean) => resolve({ data, binary })));
}

describe('WebSocket channels', () => {
  it('binary codec: a channel byte, then the bytes; v5 [255, n] ends channel n', async () => {
    const p = await pair();
    try {
      const conn = new WebSocketChannels(p.server, codecFor('v5.channel.k8s.io'));
      const stdin = conn.open(0, true);
      const stdout = conn.open(1, false);
      const got = nextMessage(p.client);
      stdout.write(Buffer.from('hi'));
      expect(await got).toEqual({ data: Buffer.from([1, 0x68, 0x69]), binary: true });
      const chunks: Buffer[] = [];
      stdin.on('data', (c: Buffer) => chunks.push(c));
      const ended = new Promise<void>((resolve) => stdin.once('end', () => resolve()));
      p.client.send(Buffer.from([0, 0x61]));
      p.client.send(Buffer.from([7, 0x62])); // a channel that is not open: dropped
      p.client.send(Buffer.from([255, 4])); // closing a channel that is not open: nothing happens
      p.client.send(Buffer.from([255, 0]));
      await ended;
      expect(Buffer.concat(chunks).toString()).toBe('a');
      expect(conn.isClosed).toBe(false);
    } finally {
      await p.close();
    }
  });

  it('base64 codec: text messages, the channel as a digit', async () => {
    const p = await pair();
    try {
      const conn = new WebSocketChannels(p.server, codecFor('v4.base64.channel.k8s.io'));
      const stdin = conn.open(0, true);
      const error = conn.open(3, false);
      const got = nextMessage(p.client);
      error.write(Buffer.from([0, 255]));
      const m = await got;
      expect(m.binary).toBe(false);
      expect(m.data.toString()).toBe(`3${Buffer.from([0, 255]).toString('base64')}`);
      const data = new Promise<Buffer>((resolve) => stdin.once('data', resolve));
      p.client.send(`0${Buffer.from('xyz').toString('base64')}`);
      expect((await data).toString()).toBe('xyz');
    } finally {
      await p.close();
    }
  });

  it('a malformed v5 close signal ends the connection with a protocol error', async () => {
    const p = await pair();
    try {
      const conn = new WebSocketChannels(p.server, codecFor('v5.channel.k8s.io'));
      conn.open(0, true);
      const closed = new Promise<number>((resolve) => p.client.once('close', resolve));
      p.client.send(Buffer.from([255, 0, 0]));
      expect(await closed).toBe(1002);
      expect(conn.isClosed).toBe(true);
    } finally {
      await p.close();
    }
  });

  it('close() sends a normal close (1000) after what was queued', async () => {
    const p = await pair();
    try {
      const conn = new WebSocketChannels(p.server, codecFor('channel.k8s.io'));
      const out = conn.open(1, false);
      const messages: Buffer[] = [];
      p.client.on('message', (m: Buffer) => messages.push(m));
      const closed = new Promise<number>((resolve) => p.client.once('close', resolve));
      out.write(Buffer.from('last words'));
      conn.close();
      expect(await closed).toBe(1000);
      expect(Buffer.concat(messages).subarray(1).toString()).toBe('last words');
    } finally {
      await p.close();
    }
  });
});

describe('WebSocket byte stream (SPDY tunnel)', () => {
  it('passes bytes both ways with message boundaries that mean nothing', async () => {
    const p = await pair();
    try {
      const stream = new WebSocketByteStream(p.server);
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      p.client.send(Buffer.from('ab'));
      p.client.send(Buffer.from('cd'));
      const got = nextMessage(p.client);
      stream.write(Buffer.from('xy'));
      expect((await got).data.toString()).toBe('xy');
      await new Promise((r) => setTimeout(r, 50));
      expect(Buffer.concat(chunks).toString()).toBe('abcd');
      const closed = new Promise<number>((resolve) => p.client.once('close', resolve));
      stream.end();
      expect(await closed).toBe(1000);
    } finally {
      await p.close();
    }
  });
});

describe('WebSocket port-forward ports', () => {
  it('takes ?port= (repeated or comma-separated), else the CRI request', () => {
    expect(webSocketPorts('/portforward/t?port=80&port=81,82', [9])).toEqual([80, 81, 82]);
    expect(webSocketPorts('/portforward/t', [8080, 9])).toEqual([8080, 9]);
    expect(webSocketPorts('/portforward/t', [])).toMatch(/no port to forward/);
    expect(webSocketPorts('/portforward/t?port=0', [])).toMatch(/unable to parse "0"/);
    expect(webSocketPorts('/portforward/t?port=65536', [])).toMatch(/unable to parse/);
    expect(webSocketPorts(`/portforward/t?port=${'9'.repeat(1000)}`, [])).toHaveLength('unable to parse "'.length + 200 + '..." as a port'.length);
    expect(webSocketPorts(`/portforward/t?port=${Array(128).fill(80).join(',')}`, [])).toMatch(/at most 127/);
  });
});

describe('status on the error channel', () => {
  it('is a JSON Status for v4, v4.base64 and v5; text before', () => {
    for (const p of ['v4.channel.k8s.io', 'v4.base64.channel.k8s.io', 'v5.channel.k8s.io']) {
      expect(JSON.parse(statusText(p, { exitCode: 2 }, '[x]')).details.causes).toEqual([{ reason: 'ExitCode', message: '2' }]);
    }
    for (const p of ['channel.k8s.io', 'base64.channel.k8s.io', '']) {
      expect(statusText(p, { exitCode: 2 }, '[x]')).toMatch(/^command terminated with non-zero exit code/);
      expect(statusText(p, { exitCode: 0 }, '[x]')).toBe('');
    }
  });
});
