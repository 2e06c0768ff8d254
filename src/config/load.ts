import convict from 'convict';
import { checkRuntimeMap, schema, RuntimeMap } from './schema';
import { envName, flagName } from './naming';

export interface AdapterConfig {
  config: string;
  listen: string;
  root: string;
  state: string;
  oldGrpcClients: boolean;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  shutdownGraceSeconds: number;
  containerd: {
    address: string;
    namespace: string;
    allowSharedNamespace: boolean;
    callTimeoutSeconds: number;
  };
  runtimes: RuntimeMap;
  defaultRuntime: string;
  cgroupDriver: 'cgroupfs' | 'systemd';
  snapshotter: string;
  sandboxImage: string;
  cni: { confDir: string; binDirs: string[]; pluginTimeoutSeconds: number; netnsPoolSize: number };
  cdi: { specDirs: string[] };
  logging: { podLogRoot: string; maxLineBytes: number; maxBytesPerTurn: number; drainTimeoutSeconds: number };
  streaming: { address: string; port: number };
  execSync: { maxOutputBytes: number };
  metrics: { address: string };
  registry: { configPath: string; maxConcurrentDownloads: number; pullProgressTimeoutSeconds: number };
}

export class ConfigError extends Error {}

interface Leaf {
  key: string;
  doc: string;
  default: unknown;
  format: unknown;
}

type SchemaNode = { [k: string]: unknown };

function isLeaf(node: unknown): node is { doc: string; default: unknown; format: unknown } {
  return typeof node === 'object' && node !== null && 'default' in node && 'doc' in node;
}

/** Every setting as a flat list, in schema order. */
export function listSettings(node: SchemaNode = schema as unknown as SchemaNode, prefix = ''): Leaf[] {
  const out: Leaf[] = [];
  for (const [name, child] of Object.entries(node)) {
    const key = prefix ? `${prefix}.${name}` : name;
    if (isLeaf(child)) out.push({ key, doc: child.doc, default: child.default, format: child.format });
    else out.push(...listSettings(child as SchemaNode, key));
  }
  return out;
}

/** The schema with env and arg names attached by the naming rule. */
function annotate(node: SchemaNode, prefix = ''): SchemaNode {
  const out: SchemaNode = {};
  for (const [name, child] of Object.entries(node)) {
    const key = prefix ? `${prefix}.${name}` : name;
    out[name] = isLeaf(child)
      ? { ...child, env: envName(key), arg: flagName(key) }
      : annotate(child as SchemaNode, key);
  }
  return out;
}

/** Refuses flags that no setting owns, so a typo is not silently ignored. */
function checkFlags(argv: string[]): void {
  const known = new Set(listSettings().map((s) => flagName(s.key)));
  known.add('help');
  for (const arg of argv) {
    if (!arg.startsWith('--')) continue;
    const name = arg.slice(2).split('=')[0]!;
    if (!known.has(name)) {
      throw new ConfigError(`unknown flag --${name} (see cri-adapter --help for the list of settings)`);
    }
  }
}

function checkConsistency(cfg: AdapterConfig): void {
  try {
    checkRuntimeMap(cfg.runtimes);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (!(cfg.defaultRuntime in cfg.runtimes)) {
    throw new ConfigError(
      `defaultRuntime: "${cfg.defaultRuntime}" is not one of the configured runtimes (${Object.keys(cfg.runtimes).join(', ')})`,
    );
  }
  if (cfg.containerd.namespace === 'k8s.io' && !cfg.containerd.allowSharedNamespace) {
    throw new ConfigError(
      'containerd.namespace: "k8s.io" belongs to containerd\'s own CRI plugin; sharing it mixes both runtimes\' pods. ' +
        'Pick another namespace, or set containerd.allowSharedNamespace=true if that is really meant.',
    );
  }
  if (!/^[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?$/.test(cfg.containerd.namespace)) {
    throw new ConfigError(`containerd.namespace: "${cfg.containerd.namespace}" is not a valid containerd namespace name`);
  }
}

/**
 * Loads settings with the precedence defaults < file < environment < flags
 * (convict re-applies env and args after a file is loaded).
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AdapterConfig {
  checkFlags(argv);
  const conf = convict(annotate(schema as unknown as SchemaNode) as never, { args: argv, env });
  const file = conf.get('config' as never) as string;
  try {
    if (file) conf.loadFile(file);
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    throw new ConfigError(err instanceof Error ? err.message : String(err));
  }
  const cfg = conf.getProperties() as AdapterConfig;
  checkConsistency(cfg);
  return cfg;
}

export function helpText(): string {
  const lines = ['Usage: cri-adapter [--flag value ...]', '', 'Settings (flag / environment variable / default):', ''];
  for (const s of listSettings()) {
    lines.push(`  --${flagName(s.key)}  (${envName(s.key)})`);
    lines.push(`      key ${s.key}; default ${JSON.stringify(s.default)}`);
    lines.push(`      ${s.doc}`);
  }
  lines.push('', 'Precedence: flags > environment > config file > defaults.');
  return lines.join('\n');
}
