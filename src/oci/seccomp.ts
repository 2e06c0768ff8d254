import { SecurityProfile_ProfileType } from '../gen/runtime/v1/api';
import type { SecurityProfile } from '../gen/runtime/v1/api';
import type { OciSeccomp, OciSeccompArg, OciSeccompSyscall, SeccompAction, SeccompOperator, SpecOpt } from './oci-types';
import defaultProfileJson from './seccomp-default.json';
import { invalidField } from './validate';
import { quote } from '../util/bounds';

export type SeccompArch = 'amd64' | 'arm64';

/** Node's process.arch -> our profile's architecture key. */
export function seccompArchFromNode(nodeArch: string): SeccompArch {
  return nodeArch === 'arm64' ? 'arm64' : 'amd64';
}

/** Shape of src/spec/seccomp-default.json (our own format, not Docker's). */
interface DefaultProfileRule {
  why: string;
  action: string;
  errnoRet?: number;
  syscalls: string[];
  args?: { index: number; value: number; valueTwo?: number; op: string }[];
  anyOfArg0?: number[];
  ifCapability?: string[];
  unlessCapability?: string[];
  onlyArch?: string[];
}
interface DefaultProfileFile {
  defaultAction: string;
  architectures: Record<SeccompArch, string[]>;
  rules: DefaultProfileRule[];
}

const ACTIONS = new Set<string>([
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
]);
const OPERATORS = new Set<string>(['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ']);

function isAction(a: unknown): a is SeccompAction {
  return typeof a === 'string' && ACTIONS.has(a);
}
function isOperator(o: unknown): o is SeccompOperator {
  return typeof o === 'string' && OPERATORS.has(o);
}

/**
 * The RuntimeDefault profile for a container with the given effective
 * capabilities. Tailoring to capabilities keeps "add SYS_ADMIN" meaningful:
 * without it, the capability would be granted and the syscalls needing it
 * still refused.
 */
export function defaultSeccompProfile(effectiveCaps: readonly string[], arch: SeccompArch): OciSeccomp {
  const file = defaultProfileJson as unknown as DefaultProfileFile;
  const caps = new Set(effectiveCaps);
  const allowed: string[] = [];
  const conditional: OciSeccompSyscall[] = [];
  for (const rule of file.rules) {
    if (rule.onlyArch && !rule.onlyArch.includes(arch)) continue;
    if (rule.ifCapability && !rule.ifCapability.some((c) => caps.has(c))) continue;
    if (rule.unlessCapability && rule.unlessCapability.some((c) => caps.has(c))) continue;
    if (!isAction(rule.action)) throw new Error(`seccomp-default.json: bad action ${rule.action}`);
    const plain = rule.action === 'SCMP_ACT_ALLOW' && !rule.args && !rule.anyOfArg0 && rule.errnoRet === undefined;
    if (plain) {
      for (const s of rule.syscalls) if (!allowed.includes(s)) allowed.push(s);
      continue;
    }
    const base: OciSeccompSyscall = { names: [...rule.syscalls], action: rule.action };
    if (rule.errnoRet !== undefined) base.errnoRet = rule.errnoRet;
    if (rule.anyOfArg0) {
      // Conditions inside one rule are ANDed, so "arg0 is one of" needs one rule per value.
      for (const value of rule.anyOfArg0) conditional.push({ ...base, names: [...base.names], args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }] });
    } else {
      if (rule.args) {
        base.args = rule.args.map((a) => {
          if (!isOperator(a.op)) throw new Error(`seccomp-default.json: bad operator ${a.op}`);
          const arg: OciSeccompArg = { index: a.index, value: a.value, op: a.op };
          if (a.valueTwo !== undefined) arg.valueTwo = a.valueTwo;
          return arg;
        });
      }
      conditional.push(base);
    }
  }
  // A syscall allowed outright needs no conditional rule as well, and
  // libseccomp refuses a second rule with a different action for it.
  const filtered = conditional
    .map((r) => ({ ...r, names: r.names.filter((n) => !allowed.includes(n)) }))
    .filter((r) => r.names.length > 0);
  if (!isAction(file.defaultAction)) throw new Error('seccomp-default.json: bad defaultAction');
  return {
    defaultAction: file.defaultAction,
    architectures: [...file.architectures[arch]],
    syscalls: [{ names: allowed.sort(), action: 'SCMP_ACT_ALLOW' }, ...filtered],
  };
}

export type SeccompChoice = { kind: 'unconfined' } | { kind: 'runtime-default' } | { kind: 'localhost'; path: string };

/**
 * Reads the seccomp request: the typed `seccomp` field when present, else
 * the deprecated string ("runtime/default", "docker/default",
 * "unconfined", "localhost/<path>"). Neither set means unconfined, as in
 * containerd with no unset_seccomp_profile: the kubelet always sends the
 * typed field, so this only affects hand-written requests.
 */
export function seccompChoice(sp: SecurityProfile | undefined, deprecatedPath: string, field: string): SeccompChoice {
  if (sp) {
    if (sp.profileType !== SecurityProfile_ProfileType.Localhost && sp.localhostRef !== '') {
      throw invalidField(`${field}.localhost_ref`, 'must only be set when profile_type is Localhost');
    }
    switch (sp.profileType) {
      case SecurityProfile_ProfileType.RuntimeDefault:
        return { kind: 'runtime-default' };
      case SecurityProfile_ProfileType.Unconfined:
        return { kind: 'unconfined' };
      case SecurityProfile_ProfileType.Localhost: {
        const path = sp.localhostRef.startsWith('localhost/') ? sp.localhostRef.slice('localhost/'.length) : sp.localhostRef;
        if (!path.startsWith('/')) throw invalidField(`${field}.localhost_ref`, `${quote(sp.localhostRef)} must be an absolute file path`);
        return { kind: 'localhost', path };
      }
      default:
        throw invalidField(`${field}.profile_type`, `unknown profile type ${sp.profileType}`);
    }
  }
  const deprecatedField = field.replace(/seccomp$/, 'seccomp_profile_path');
  switch (deprecatedPath) {
    case '':
    case 'unconfined':
      return { kind: 'unconfined' };
    case 'runtime/default':
    case 'docker/default':
      return { kind: 'runtime-default' };
    default: {
      if (!deprecatedPath.startsWith('localhost/')) throw invalidField(deprecatedField, `unknown profile ${quote(deprecatedPath)}`);
      const path = deprecatedPath.slice('localhost/'.length);
      if (!path.startsWith('/')) throw invalidField(deprecatedField, `${quote(deprecatedPath)} must name an absolute file path`);
      return { kind: 'localhost', path };
    }
  }
}

function expectNumber(v: unknown, where: string, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw invalidField(field, `${where} must be a non-negative integer`);
  return v;
}

/**
 * Validates a Localhost profile (the parsed JSON of the file the kubelet
 * named) in the OCI `linux.seccomp` format, which is what containerd reads
 * from such files too. Unknown keys are ignored the same way.
 */
export function parseSeccompProfile(json: unknown, field: string): OciSeccomp {
  const bad = (why: string) => invalidField(field, `invalid seccomp profile: ${why}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('not a JSON object');
  const o = json as Record<string, unknown>;
  if (!isAction(o.defaultAction)) throw bad(`defaultAction ${quote(o.defaultAction)} is not a seccomp action`);
  const out: OciSeccomp = { defaultAction: o.defaultAction };
  if (o.defaultErrnoRet !== undefined) out.defaultErrnoRet = expectNumber(o.defaultErrnoRet, 'defaultErrnoRet', field);
  const strings = (v: unknown, name: string): string[] => {
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(`${name} must be a list of strings`);
    return [...(v as string[])];
  };
  if (o.architectures !== undefined && o.architectures !== null) out.architectures = strings(o.architectures, 'architectures');
  if (o.flags !== undefined && o.flags !== null) out.flags = strings(o.flags, 'flags');
  if (typeof o.listenerPath === 'string' && o.listenerPath !== '') out.listenerPath = o.listenerPath;
  if (typeof o.listenerMetadata === 'string' && o.listenerMetadata !== '') out.listenerMetadata = o.listenerMetadata;
  if (o.syscalls !== undefined && o.syscalls !== null) {
    if (!Array.isArray(o.syscalls)) throw bad('syscalls must be a list');
    out.syscalls = o.syscalls.map((s: unknown, i: number): OciSeccompSyscall => {
      if (typeof s !== 'object' || s === null) throw bad(`syscalls[${i}] is not an object`);
      const r = s as Record<string, unknown>;
      const names = strings(r.names, `syscalls[${i}].names`);
      if (names.length === 0) throw bad(`syscalls[${i}].names is empty`);
      if (!isAction(r.action)) throw bad(`syscalls[${i}].action ${quote(r.action)} is not a seccomp action`);
      const rule: OciSeccompSyscall = { names, action: r.action };
      if (r.errnoRet !== undefined) rule.errnoRet = expectNumber(r.errnoRet, `syscalls[${i}].errnoRet`, field);
      if (r.args !== undefined && r.args !== null) {
        if (!Array.isArray(r.args)) throw bad(`syscalls[${i}].args must be a list`);
        rule.args = r.args.map((a: unknown, j: number): OciSeccompArg => {
          if (typeof a !== 'object' || a === null) throw bad(`syscalls[${i}].args[${j}] is not an object`);
          const x = a as Record<string, unknown>;
          const index = expectNumber(x.index, `syscalls[${i}].args[${j}].index`, field);
          if (index > 5) throw bad(`syscalls[${i}].args[${j}].index must be 0..5`);
          if (!isOperator(x.op)) throw bad(`syscalls[${i}].args[${j}].op ${quote(x.op)} is not a comparison`);
          const arg: OciSeccompArg = { index, value: expectNumber(x.value, `syscalls[${i}].args[${j}].value`, field), op: x.op };
          if (x.valueTwo !== undefined) arg.valueTwo = expectNumber(x.valueTwo, `syscalls[${i}].args[${j}].valueTwo`, field);
          return arg;
        });
      }
      return rule;
    });
  }
  return out;
}

export interface SeccompInputs {
  choice: SeccompChoice;
  privileged: boolean;
  /** False when the kernel has no seccomp; then only Unconfined can be honoured. */
  seccompEnabled: boolean;
  effectiveCaps: readonly string[];
  arch: SeccompArch;
  /** Parsed JSON of the Localhost profile file (the caller reads it). */
  localhostProfile?: unknown;
  field: string;
}

/**
 * The seccomp section, or undefined for none. Privileged containers run
 * unconfined whatever was asked, as everywhere in Kubernetes.
 */
export function resolveSeccomp(input: SeccompInputs): OciSeccomp | undefined {
  if (input.privileged || input.choice.kind === 'unconfined') return undefined;
  if (!input.seccompEnabled) throw invalidField(input.field, 'seccomp is not supported on this node');
  if (input.choice.kind === 'runtime-default') return defaultSeccompProfile(input.effectiveCaps, input.arch);
  if (input.localhostProfile === undefined) {
    throw invalidField(`${input.field}.localhost_ref`, `profile ${input.choice.path} could not be read`);
  }
  return parseSeccompProfile(input.localhostProfile, `${input.field}.localhost_ref (${input.choice.path})`);
}

/** The file a caller must read and parse before building, if any. */
export function seccompProfileFile(choice: SeccompChoice): string | undefined {
  return choice.kind === 'localhost' ? choice.path : undefined;
}

export function withSeccomp(profile: OciSeccomp | undefined): SpecOpt {
  return (spec) => {
    if (profile) spec.linux.seccomp = profile;
    else delete spec.linux.seccomp;
  };
}
