/**
 * Runs inside a pod's network namespace (started by nsenter, see
 * port-forward.ts) and joins stdin/stdout to a TCP connection to a local
 * port there: Node cannot enter a namespace itself, a child process can be
 * started in one. Loopback IPv4 first, then IPv6, as the kubelet tries.
 *
 * Usage: node netns-dial.js <port>. Exit 0 after the connection ends; on a
 * failed connect, the reason on stderr and exit 1.
 */
import * as net from 'node:net';

const port = Number(process.argv[2]);

function dial(hosts: string[], errors: string[]): void {
  const host = hosts[0];
  if (host === undefined) {
    process.stderr.write(`failed to connect to localhost:${port} inside the pod's network namespace: ${errors.join('; ')}`);
    process.exit(1);
  }
  const socket = net.connect({ host, port });
  socket.once('error', (err) => dial(hosts.slice(1), [...errors, `${host}: ${err.message}`]));
  socket.once('connect', () => {
    socket.removeAllListeners('error');
    socket.on('error', () => process.exit(0));
    process.stdin.pipe(socket);
    socket.pipe(process.stdout);
    socket.on('close', () => process.exit(0));
  });
}

if (!Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write(`invalid port ${process.argv[2] ?? ''}`);
  process.exit(2);
}
dial(['127.0.0.1', '::1'], []);
