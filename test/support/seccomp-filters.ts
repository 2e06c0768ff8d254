import { existsSync } from 'node:fs';
import path from 'node:path';
import { run } from '../harness/util';

export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** BPF `ret #k` (BPF_RET | BPF_K). */
export const BPF_RET_K = 0x06;
/** The seccomp action "fail the call with errno": SECCOMP_RET_ERRNO | errno. */
export const seccompRetErrno = (errno: number): number => 0x00050000 | errno;

/** Compiles test/support/seccomp-filters.c into `outDir` once. */
async function helper(outDir: string): Promise<string> {
  const out = path.join(outDir, 'seccomp-filters');
  if (!existsSync(out)) {
    const src = [path.join(__dirname, 'seccomp-filters.c'), path.resolve(__dirname, '..', '..', '..', 'test', 'support', 'seccomp-filters.c')].find(existsSync);
    if (!src) throw new Error('seccomp-filters.c not found');
    await run('gcc', ['-O1', '-Wall', '-Wextra', '-Werror', '-o', out, src], { timeoutMs: 60_000 });
  }
  return out;
}

/** The seccomp programs the kernel runs for process `pid` (newest first); [] when it has none. */
export async function seccompFilters(pid: number, outDir: string): Promise<BpfInstruction[][]> {
  const { stdout } = await run(await helper(outDir), [String(pid)]);
  const filters: BpfInstruction[][] = [];
  for (const line of stdout.split('\n').filter(Boolean)) {
    if (line.startsWith('filter ')) {
      filters.push([]);
      continue;
    }
    const [code, jt, jf, k] = line.split(' ');
    filters[filters.length - 1]!.push({ code: parseInt(code!, 16), jt: Number(jt), jf: Number(jf), k: parseInt(k!, 16) >>> 0 });
  }
  return filters;
}

/** The Seccomp: line of /proc/PID/status (0 none, 1 strict, 2 filter) and Seccomp_filters. */
export function seccompStatus(statusText: string): { mode: number; filters: number } {
  return {
    mode: Number(/^Seccomp:\s+(\d+)/m.exec(statusText)?.[1] ?? -1),
    filters: Number(/^Seccomp_filters:\s+(\d+)/m.exec(statusText)?.[1] ?? -1),
  };
}
