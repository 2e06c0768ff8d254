import type { ContainerConfig, KeyValue } from '../gen/runtime/v1/api';
import { DEFAULT_PATH_ENV } from './defaults';
import type { ImageConfig, SpecOpt } from './oci-types';
import { cleanAbsolutePath, invalidField } from './validate';
import { quote } from '../util/bounds';

/**
 * The kubelet's override rules for the first process:
 * - command set: it replaces the image Entrypoint, and the image Cmd is
 *   dropped too (Kubernetes documents "command without args ignores the
 *   image's CMD");
 * - only args set: image Entrypoint + args;
 * - neither: image Entrypoint + Cmd.
 * An image `ENTRYPOINT [""]` is how Dockerfiles clear an inherited
 * entrypoint, so it counts as none.
 */
export function resolveProcessArgs(command: readonly string[], args: readonly string[], image: ImageConfig): string[] {
  let entrypoint: readonly string[] = command;
  let rest: readonly string[] = args;
  if (command.length === 0) {
    const imageEntrypoint = image.Entrypoint ?? [];
    entrypoint = imageEntrypoint.length === 1 && imageEntrypoint[0] === '' ? [] : imageEntrypoint;
    if (args.length === 0) rest = image.Cmd ?? [];
  }
  const result = [...entrypoint, ...rest];
  if (result.length === 0) throw invalidField('command', 'no command specified (neither the config nor the image has one)');
  return result;
}

export function withProcessArgs(args: readonly string[]): SpecOpt {
  return (spec) => {
    spec.process.args = [...args];
  };
}

/**
 * Merges `overrides` into `base` the way a shell would apply assignments:
 * a key keeps the position of its first appearance and takes the value of
 * its last. A bare `KEY` (no "=") unsets it, as containerd allows.
 */
export function mergeEnv(base: readonly string[], overrides: readonly string[]): string[] {
  const result: (string | undefined)[] = [];
  const position = new Map<string, number>();
  const keyOf = (entry: string): string => {
    const eq = entry.indexOf('=');
    return eq < 0 ? entry : entry.slice(0, eq);
  };
  for (const entry of [...base, ...overrides]) {
    const key = keyOf(entry);
    const at = position.get(key);
    const unset = !entry.includes('=');
    if (at !== undefined) {
      result[at] = unset ? undefined : entry;
      if (unset) position.delete(key);
    } else if (!unset) {
      position.set(key, result.length);
      result.push(entry);
    }
  }
  return result.filter((e): e is string => e !== undefined);
}

export function withEnv(entries: readonly string[]): SpecOpt {
  return (spec) => {
    spec.process.env = mergeEnv(spec.process.env ?? [], entries);
  };
}

/** Gives PATH a value when nothing else will; an image's PATH then replaces it. */
export const withDefaultPathEnv: SpecOpt = (spec) => {
  spec.process.env = mergeEnv([DEFAULT_PATH_ENV], spec.process.env ?? []);
};

/** CRI env values are bytes on the wire; the process environment is text. */
export function criEnvToStrings(envs: readonly KeyValue[]): string[] {
  return envs.map((kv, i) => {
    if (kv.key === '') throw invalidField(`envs[${i}].key`, 'must not be empty');
    if (kv.key.includes('=')) throw invalidField(`envs[${i}].key`, `${quote(kv.key)} must not contain "="`);
    // Decoders hand out Buffer, hand-built requests may carry a plain Uint8Array.
    const value = Buffer.from(kv.value ?? new Uint8Array()).toString('utf8');
    return `${kv.key}=${value}`;
  });
}

/**
 * The container environment, lowest precedence first: default PATH, TERM
 * for a TTY, HOSTNAME, the image's Env, the CRI envs.
 */
export function containerEnv(config: ContainerConfig, image: ImageConfig, hostname: string): string[] {
  let env = [DEFAULT_PATH_ENV];
  if (config.tty) env = mergeEnv(env, ['TERM=xterm']);
  if (hostname !== '') env = mergeEnv(env, [`HOSTNAME=${hostname}`]);
  env = mergeEnv(env, image.Env ?? []);
  return mergeEnv(env, criEnvToStrings(config.envs));
}

/** runc insists on an absolute cwd; an image's relative WorkingDir is read from /. */
export function resolveWorkingDir(configDir: string, image: ImageConfig): string {
  if (configDir !== '') return cleanAbsolutePath(configDir, 'working_dir');
  const imageDir = image.WorkingDir ?? '';
  if (imageDir === '') return '/';
  return cleanAbsolutePath(imageDir.startsWith('/') ? imageDir : `/${imageDir}`, 'image config WorkingDir');
}

export function withCwd(cwd: string): SpecOpt {
  return (spec) => {
    spec.process.cwd = cwd;
  };
}

export function withTerminal(tty: boolean): SpecOpt {
  return (spec) => {
    if (tty) spec.process.terminal = true;
    else delete spec.process.terminal;
  };
}
