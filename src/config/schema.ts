import convict from 'convict';
import { parseHostPort } from '../util/host-port';

/**
 * One schema for every setting. Keys are camelCase paths; the flag and the
 * environment variable of each key are derived from the path by one rule
 * (see naming.ts), so `registry.configPath` is `--registry-config-path` and
 * `CRI_ADAPTER_REGISTRY_CONFIG_PATH`. Later features add keys here only.
 */

export interface RuntimeHandlerConfig {
  /** containerd runtime type, e.g. io.containerd.runc.v2 */
  type: string;
  /** runc's state directory; empty means the shim's default. */
  root?: string;
  systemdCgroup?: boolean;
  binaryName?: string;
}

export type RuntimeMap = Record<string, RuntimeHandlerConfig>;

const RUNTIME_KEYS = new Set(['type', 'root', 'systemdCgroup', 'binaryName']);

/**
 * Checks the runtimes map; run after loading. The setting is declared to
 * convict as a plain Object because convict only takes a map-valued setting
 * from a config file whole when its format is 'object' (with a custom format
 * it walks into the map as if it were schema and fails on the handler names).
 */
export function checkRuntimeMap(value: unknown): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('runtimes: must be an object mapping handler names to {type, root, systemdCgroup, binaryName}');
  }
  for (const [handler, entry] of Object.entries(value as Record<string, unknown>)) {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(handler)) {
      throw new Error(`runtimes: handler name "${handler}" must be alphanumeric with . _ -`);
    }
    if (typeof entry !== 'object' || entry === null) {
      throw new Error(`runtimes.${handler} must be an object`);
    }
    for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
      if (!RUNTIME_KEYS.has(k)) throw new Error(`runtimes.${handler}.${k} is not a known runtime option`);
      if ((k === 'type' || k === 'root' || k === 'binaryName') && typeof v !== 'string') {
        throw new Error(`runtimes.${handler}.${k} must be a string`);
      }
      if (k === 'systemdCgroup' && typeof v !== 'boolean') {
        throw new Error(`runtimes.${handler}.${k} must be a boolean`);
      }
    }
    const type = (entry as Record<string, unknown>).type;
    if (typeof type !== 'string' || type === '') throw new Error(`runtimes.${handler}.type is required`);
  }
}

convict.addFormat({
  name: 'string-list',
  validate(value: unknown) {
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v === '')) {
      throw new Error('must be a list of non-empty strings');
    }
  },
  coerce(value: unknown) {
    if (typeof value !== 'string') return value;
    return value.startsWith('[') ? JSON.parse(value) : value.split(',').map((s) => s.trim()).filter(Boolean);
  },
});

convict.addFormat({
  name: 'absolute-path',
  validate(value: unknown) {
    if (typeof value !== 'string' || !value.startsWith('/')) throw new Error('must be an absolute path');
  },
});

convict.addFormat({
  name: 'positive-int',
  validate(value: unknown) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new Error('must be a positive integer');
  },
  coerce(value: unknown) {
    return typeof value === 'string' ? Number(value) : value;
  },
});

convict.addFormat({
  name: 'optional-host-port',
  validate(value: unknown) {
    if (value === '') return;
    if (typeof value !== 'string' || !parseHostPort(value)) throw new Error('must be empty (off) or host:port, e.g. 127.0.0.1:9796');
  },
});

export const schema = {
  config: {
    doc: 'Configuration file (JSON). Environment variables override it; flags override both.',
    format: String,
    default: '',
  },
  listen: {
    doc: 'Unix socket on which the CRI gRPC API is served.',
    format: 'absolute-path',
    default: '/run/cri-adapter/cri-adapter.sock',
  },
  root: {
    doc: 'Persistent directory for state that must survive reboots of the adapter.',
    format: 'absolute-path',
    default: '/var/lib/cri-adapter',
  },
  state: {
    doc: 'Runtime directory (FIFOs, pod files); may be lost on reboot.',
    format: 'absolute-path',
    default: '/run/cri-adapter',
  },
  oldGrpcClients: {
    doc: 'Serve gRPC clients that send the socket path as :authority (grpc-go before 1.57: kubelets up to 1.28, crictl 1.26) by rewriting their header blocks (a modern client\'s socket goes to gRPC natively once its first request is read); false hands every connection to gRPC at once, and such clients then fail.',
    format: Boolean,
    default: true,
  },
  logLevel: {
    doc: 'Log level: error, warn, info, debug.',
    format: ['error', 'warn', 'info', 'debug'],
    default: 'info',
  },
  shutdownGraceSeconds: {
    doc: 'On SIGTERM/SIGINT, how long in-flight CRI calls may take before they are cut.',
    format: 'nat',
    default: 10,
  },
  containerd: {
    address: {
      doc: "containerd's gRPC socket.",
      format: 'absolute-path',
      default: '/run/containerd/containerd.sock',
    },
    namespace: {
      doc: "containerd namespace for the adapter's objects. Never k8s.io unless allowSharedNamespace is set.",
      format: String,
      default: 'cri-adapter',
    },
    allowSharedNamespace: {
      doc: "Allow using containerd's own CRI plugin namespace (k8s.io); both would then see each other's objects.",
      format: Boolean,
      default: false,
    },
    callTimeoutSeconds: {
      doc: 'Deadline of one containerd call when the CRI caller gave none.',
      format: 'nat',
      default: 120,
    },
  },
  runtimes: {
    doc:
      'Map of CRI runtime handler name to {type, root, systemdCgroup, binaryName}. Handlers in a config file are ' +
      'added to the default runc handler (and may redefine it); a flag or environment variable (JSON) replaces the map.',
    format: Object,
    default: { runc: { type: 'io.containerd.runc.v2' } } as RuntimeMap,
  },
  defaultRuntime: {
    doc: 'Handler used when a pod names none. Must be a key of runtimes.',
    format: String,
    default: 'runc',
  },
  cgroupDriver: {
    doc: 'Cgroup driver reported to the kubelet and used for cgroup paths: cgroupfs or systemd.',
    format: ['cgroupfs', 'systemd'],
    default: 'cgroupfs',
  },
  snapshotter: {
    doc: 'containerd snapshotter for image layers and container root filesystems.',
    format: String,
    default: 'overlayfs',
  },
  sandboxImage: {
    doc: 'Image of the pod infra (pause) container.',
    format: String,
    default: 'registry.k8s.io/pause:3.10',
  },
  cni: {
    confDir: {
      doc: 'Directory of CNI network configuration files; the first in lexical order is used.',
      format: 'absolute-path',
      default: '/etc/cni/net.d',
    },
    binDirs: {
      doc: 'Directories searched for CNI plugin binaries.',
      format: 'string-list',
      default: ['/opt/cni/bin', '/usr/lib/cni'],
    },
    pluginTimeoutSeconds: {
      doc: 'A CNI plugin run (ADD or DEL) that takes longer is killed and the call fails.',
      format: 'nat',
      default: 60,
    },
    netnsPoolSize: {
      doc: 'Network namespaces made ahead of RunPodSandbox (refilled in the background), so a pod start skips making one; 0 makes each when it is needed.',
      format: 'nat',
      default: 2,
    },
  },
  cdi: {
    specDirs: {
      doc:
        'Directories of CDI spec files (JSON or YAML) describing the devices containers may ask for by name; a device ' +
        'in a later directory overrides one of the same name in an earlier one. Watched for changes.',
      format: 'string-list',
      default: ['/etc/cdi', '/var/run/cdi'],
    },
  },
  logging: {
    podLogRoot: {
      doc: "When set, every pod's log_directory must be inside this directory (after symlinks), as the kubelet's /var/log/pods is; empty allows any directory but a system one.",
      format: String,
      default: '',
    },
    maxLineBytes: {
      doc: 'Container log lines longer than this are split into partial (P) records.',
      format: 'positive-int',
      default: 16384,
    },
    maxBytesPerTurn: {
      doc:
        'Bytes of one container\'s output written to its log before the adapter turns to other work (other ' +
        'containers\' logs, CRI calls). Bounds how long one busy container can delay another\'s log lines: the ' +
        'time to format and append this many bytes (about 0.3 ms for 64 KiB here) per busy container per turn.',
      format: 'positive-int',
      default: 65536,
    },
    drainTimeoutSeconds: {
      doc: 'After a container exits, how long to wait for the rest of its output (a daemonised child may hold the pipe).',
      format: 'nat',
      default: 2,
    },
  },
  streaming: {
    address: {
      doc:
        'Address the streaming server (Exec, Attach, PortForward) listens on. The kubelet connects to it; keep it on ' +
        'loopback unless clients elsewhere must reach it (it has no authentication of its own: URLs carry one-time tokens).',
      format: String,
      default: '127.0.0.1',
    },
    port: {
      doc: 'Port of the streaming server; 0 picks a free one at each start (URLs are handed out per call).',
      format: 'port',
      default: 0,
    },
  },
  execSync: {
    maxOutputBytes: {
      doc: 'ExecSync keeps at most this many bytes of each of stdout and stderr (probe output is short; the rest is dropped).',
      format: 'nat',
      default: 1048576,
    },
  },
  metrics: {
    address: {
      doc:
        'host:port of the Prometheus /metrics endpoint (e.g. 127.0.0.1:9796); empty turns it off. It has no ' +
        'authentication: keep it on loopback or behind something that guards it.',
      format: 'optional-host-port',
      default: '',
    },
  },
  registry: {
    configPath: {
      doc: 'Directory of <host>/hosts.toml registry host configurations (containerd layout).',
      format: String,
      default: '',
    },
    maxConcurrentDownloads: {
      doc: 'Layer downloads of one pull that run at once.',
      format: 'nat',
      default: 3,
    },
    pullProgressTimeoutSeconds: {
      doc: 'A pull that receives no bytes for this long is cancelled.',
      format: 'nat',
      default: 60,
    },
  },
};

export type Schema = typeof schema;
