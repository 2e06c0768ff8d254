import http from 'node:http';

/** One GET against a daemon's metrics server (a fresh connection each time, as a scraper makes). */
export function getMetrics(port: number, urlPath = '/metrics'): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
        let body = '';
        res.on('data', (b: Buffer) => (body += b.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }));
      })
      .on('error', reject);
  });
}

/** The port a daemon started with `--metrics-address 127.0.0.1:0` bound, from its "serving metrics" log line. */
export function metricsPort(logs: string): number {
  for (const line of logs.split('\n')) {
    if (!line.includes('"serving metrics"')) continue;
    const port = (JSON.parse(line) as { port?: number }).port;
    if (port) return port;
  }
  throw new Error('the daemon did not log its metrics port');
}
