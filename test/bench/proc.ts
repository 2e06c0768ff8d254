import { readdirSync, readFileSync } from 'node:fs';

// USER_HZ: the unit of utime/stime in /proc/PID/stat; 100 on every Linux this runs on.
const CLOCK_TICKS_PER_S = 100;

/** CPU time (user + system) a process has used so far, in ms, from /proc/PID/stat. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_S;
}

/** A "Name:   N kB" field of /proc/PID/status text, in MB; NaN when the field is absent. */
function statusFieldMb(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

const procStatus = (pid: number) => readFileSync(`/proc/${pid}/status`, 'utf8');

/** Resident set size of a process, in MB, from /proc/PID/status. */
export function rssMb(pid: number): number {
  return statusFieldMb(procStatus(pid), 'VmRSS');
}

/** Resident memory of a process by kind, in MB, from /proc/PID/status: anonymous (heaps, malloc) and file-backed (code). */
export function rssKindsMb(pid: number): { anon: number; file: number } {
  const status = procStatus(pid);
  return { anon: statusFieldMb(status, 'RssAnon'), file: statusFieldMb(status, 'RssFile') };
}

/** Summed CPU time of several processes, in ms. */
export function cpuMsOf(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
}

/** The process whose command line holds `arg` (e.g. the harness containerd's config path). */
export function pidWithArg(arg: string): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes(arg)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no process with argument ${arg}`);
}

/**
 * CPU time the whole machine has spent busy so far, in ms, from /proc/stat
 * (user, nice, system, irq, softirq, steal; not idle or iowait): what every
 * process of a pod start costs together, the runtime's helpers, CNI plugins,
 * shims and runc included.
 */
export function machineCpuMs(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu;
  return (((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * 1000) / CLOCK_TICKS_PER_S;
}
