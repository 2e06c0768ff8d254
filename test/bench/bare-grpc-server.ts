/**
 * A bare grpc-js server answering only RuntimeService/Version with a
 * constant, in its own process: the cost of any Node gRPC server on a unix
 * socket, with none of the adapter's code. The version-status scenario
 * measures it to show what part of the adapter's latency is Node's floor.
 */
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { RuntimeServiceService } from '../../src/gen/runtime/v1/api';

const socket = process.argv[2]!;
const server = new Server();
const impl: Record<string, unknown> = {};
for (const name of Object.keys(RuntimeServiceService)) {
  impl[name] = (_call: unknown, cb: (err: unknown, res?: unknown) => void) => cb({ code: status.UNIMPLEMENTED });
}
impl.version = (_call: unknown, cb: (err: null, res: unknown) => void) =>
  cb(null, { version: '0.1.0', runtimeName: 'bare', runtimeVersion: '0.0.0', runtimeApiVersion: 'v1' });
server.addService(RuntimeServiceService, impl as never);
server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  process.stdout.write('ready\n');
});
process.on('SIGTERM', () => server.forceShutdown());
