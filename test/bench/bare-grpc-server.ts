/**
 * A bare grpc-js server answering only RuntimeService/Version with a
 * constant, in its own process: the cost of any Node gRPC server on a unix
 * socket, with none of the adapter's code. The version-status scenario
 * measures it to show what part of the adapter's latency is Node's floor.
 * With a second argument `edge` it serves through the adapter's CriServer
 * (connections accepted by the adapter and passed through the authority
 * rewriter into grpc-js's connection injector) instead of grpc-js's own
 * bindAsync: the pair measures what that path costs a call. With `http2` it
 * is no gRPC library at all: Node's HTTP/2 server answering every request
 * with the same pre-encoded Version response and status trailer, the least
 * any Node server pays per call.
 */
import http2 from 'node:http2';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { CriServer } from '../../src/cri/server';
import { RuntimeServiceService, VersionResponse } from '../../src/gen/runtime/v1/api';
import { silentLogger } from '../../src/log/logger';

const socket = process.argv[2]!;
const mode = process.argv[3];
const viaEdge = mode === 'edge';
const version = { version: '0.1.0', runtimeName: 'bare', runtimeVersion: '0.0.0', runtimeApiVersion: 'v1' };
const impl: Record<string, unknown> = {};
for (const name of Object.keys(RuntimeServiceService)) {
  impl[name] = (_call: unknown, cb: (err: unknown, res?: unknown) => void) => cb({ code: status.UNIMPLEMENTED });
}
impl.version = (_call: unknown, cb: (err: null, res: unknown) => void) =>
  cb(null, version);
if (mode === 'http2') {
  const message = Buffer.from(VersionResponse.encode(version).finish());
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message]);
  framed.writeUInt32BE(message.length, 1);
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(framed);
    });
  });
  server.listen(socket, () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => server.close());
} else if (viaEdge) {
  const edge = new CriServer(socket, silentLogger());
  edge.addService(RuntimeServiceService, impl as never);
  void edge.listen().then(() => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => void edge.shutdown(0));
} else {
  // As the adapter's CriServer: channelz off (nothing serves it; it costs every call).
  const server = new Server({ 'grpc.enable_channelz': 0 });
  server.addService(RuntimeServiceService, impl as never);
  server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    process.stdout.write('ready\n');
  });
  process.on('SIGTERM', () => server.forceShutdown());
}
