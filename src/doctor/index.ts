import { ConfigError, loadConfig } from '../config/load';
import { CheckResult, runChecks } from './checks';

export type { CheckResult } from './checks';

/** `cri-adapter doctor [--json] [--kubelet-config FILE] [settings...]`: its own flags, then the daemon's. */
function splitArgs(argv: string[]): { json: boolean; kubeletConfig?: string; rest: string[] } {
  const rest: string[] = [];
  let json = false;
  let kubeletConfig: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') json = true;
    else if (a === '--kubelet-config') kubeletConfig = argv[++i];
    else if (a.startsWith('--kubelet-config=')) kubeletConfig = a.slice('--kubelet-config='.length);
    else rest.push(a);
  }
  return { json, kubeletConfig, rest };
}

export function formatText(results: CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.check.length));
  const lines = results.map((r) => `${r.status.padEnd(4)}  ${r.check.padEnd(width)}  ${r.message}${r.fix ? `  -> ${r.fix}` : ''}`);
  const failed = results.filter((r) => r.status === 'FAIL').length;
  const warned = results.filter((r) => r.status === 'WARN').length;
  lines.push('', failed ? `${failed} check(s) failed, ${warned} warning(s)` : `no failures, ${warned} warning(s)`);
  return lines.join('\n');
}

/** Runs every check and prints them; the exit code is 0 only when nothing failed. */
export async function runDoctor(argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { json, kubeletConfig, rest } = splitArgs(argv);
  let results: CheckResult[];
  try {
    const config = loadConfig(rest);
    results = [{ check: 'config', status: 'OK', message: config.config ? `loaded ${config.config}` : 'defaults, environment and flags (no --config file)' }];
    results.push(...(await runChecks(config, { kubeletConfig })));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    results = [{ check: 'config', status: 'FAIL', message: err.message, fix: 'fix the configuration; cri-adapter --help lists every setting' }];
  }
  out.write(json ? JSON.stringify({ ok: !results.some((r) => r.status === 'FAIL'), checks: results }, null, 2) + '\n' : formatText(results) + '\n');
  return results.some((r) => r.status === 'FAIL') ? 1 : 0;
}
