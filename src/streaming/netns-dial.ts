/**
 * A helper that lives in a pod's network namespace (started under nsenter by
 * NetnsDialer): Node cannot enter a namespace itself, but a process started
 * in one can open connections there and hand the connected sockets back to
 * the daemon over Node's IPC channel, so the bytes then flow between the
 * daemon and the pod directly, not through this process.
 *
 * Messages in: { id, port }. Out: { id } with the socket as the handle, or
 * { id, error }. Loopback IPv4 first, then IPv6, as the kubelet tries. Exits
 * when the daemon goes away.
 */
import * as net from 'node:net';

interface DialRequest {
  id: number;
  port: number;
}

function dial(req: DialRequest, hosts: string[], errors: string[]): void {
  const host = hosts[0];
  if (host === undefined) {
    process.send?.({ id: req.id, error: `failed to connect to localhost:${req.port} inside the pod's network namespace: ${errors.join('; ')}` });
    return;
  }
  const socket = net.connect({ host, port: req.port });
  socket.once('error', (err) => dial(req, hosts.slice(1), [...errors, `${host}: ${err.message}`]));
  socket.once('connect', () => {
    socket.removeAllListeners('error');
    socket.pause();
    // Sending a handle closes our copy once it is passed (keepOpen defaults to false).
    process.send?.({ id: req.id }, socket);
  });
}

process.on('message', (m: DialRequest) => {
  if (!Number.isInteger(m.port) || m.port < 1 || m.port > 65535) {
    process.send?.({ id: m.id, error: `invalid port ${m.port}` });
    return;
  }
  dial(m, ['127.0.0.1', '::1'], []);
});
process.on('disconnect', () => process.exit(0));
